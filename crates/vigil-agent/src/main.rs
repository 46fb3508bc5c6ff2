//! `vigil-agent`: the headless agent binary.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| "info,pulseaudio=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil-agent: {e:#}");
            ExitCode::from(2)
        }
    }
}
