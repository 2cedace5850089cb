//! The `strata` binary: a thin shell over [`strata::cli`].

use clap::Parser;

fn main() {
    let cli = strata::cli::args::Cli::parse();
    let filter = if cli.global.debug { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match strata::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            strata::cli::report_error(&e);
            2
        }
    };
    std::process::exit(code);
}
