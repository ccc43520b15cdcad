//! Progress bars on stderr (hidden when stderr is not a terminal or `G2D_QUIET` is set).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn bar(len: u64, message: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if std::env::var_os("G2D_QUIET").is_some() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{msg:38} {bar:30} {pos}/{len} [{elapsed_precise}<{eta}] {per_sec}",
        )
        .expect("valid template"),
    );
    pb.set_message(message.to_string());
    pb
}
