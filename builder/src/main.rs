//! The `strata` binary: a thin shell over [`strata::cli`].

use clap::Parser;

fn main() {
    // Descriptors strata inherited (a caller's `exec 7</etc/shadow`) reach none of its children.
    if let Err(e) = strata_executor::init::cloexec_inherited_fds() {
        eprintln!("strata: marking inherited file descriptors close-on-exec: {e}");
        std::process::exit(2);
    }
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
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            strata::cli::report_error(&e);
            2
        }
    };
    std::process::exit(code);
}

/// Output closed early (`strata graph | head`): not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
