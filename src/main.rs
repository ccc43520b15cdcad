use clap::Parser;

fn main() {
    let cli = g2d::cli::Cli::parse();
    if let Err(e) = g2d::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
