//! `convoy`: parse the command line, set up logging, run. Errors end in one line on
//! stderr and exit status 1, never a panic.

use clap::Parser;
use convoy::config::{Cli, Command, LogFormat};

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CONVOY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(config) => {
            init_tracing(config.log_format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("convoy-http")
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(convoy::run(config)))
        }
        Command::Openapi => {
            use std::io::Write;
            std::io::stdout()
                .write_all(convoy::http::openapi::document_json().as_bytes())
                .map_err(anyhow::Error::from)
        }
    };
    if let Err(e) = result {
        eprintln!("convoy: error: {e:#}");
        std::process::exit(1);
    }
}
