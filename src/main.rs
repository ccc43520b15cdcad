use clap::Parser;

fn main() {
    let cli = g2d::native::cli::Cli::parse();
    if let Err(e) = g2d::native::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
