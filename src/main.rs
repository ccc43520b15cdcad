use clap::Parser;

fn main() {
    let cli = g2d::cli::Cli::parse();
    if let Err(e) = g2d::cli::run(cli) {
        // The code is stable (scripts may match on it); the message may be reworded.
        eprintln!("error[{}]: {e}", e.code());
        std::process::exit(1);
    }
}
