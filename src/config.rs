//! Command line and environment: every flag of `convoy serve` also reads `CONVOY_*`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::backend::Device;

/// Convoy: an HTTP/JSON model server with dynamic batching over ONNX Runtime.
#[derive(Debug, Parser)]
#[command(name = "convoy", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the model repository over the KServe v2 (Open Inference) protocol.
    Serve(ServeConfig),
    /// Print the OpenAPI document of the HTTP API (JSON) to stdout; Swagger UI serves
    /// it at /docs. Regenerate the committed copy: `convoy openapi > openapi/openapi.json`.
    Openapi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything `convoy serve` needs. Defaults serve the shipped `models/` on port 8000.
#[derive(Clone, Debug, Parser)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "CONVOY_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// HTTP port (8000, as Triton's).
    #[arg(long, env = "CONVOY_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Folder with one `<name>/model.toml` per model.
    #[arg(long, env = "CONVOY_MODEL_REPOSITORY", default_value = "models")]
    pub model_repository: PathBuf,

    /// Where models run: auto (CUDA if usable, else CPU), cpu, cuda or cuda:N.
    #[arg(long, env = "CONVOY_DEVICE", default_value = "auto")]
    pub device: Device,

    /// ONNX Runtime shared library. Default: $ORT_DYLIB_PATH, else
    /// .ort/cpu/libonnxruntime.so (made by `deploy/setup.sh`).
    #[arg(long, env = "CONVOY_ORT_LIB")]
    pub ort_lib: Option<PathBuf>,

    /// ONNX Runtime intra-op threads per session, for models that do not set their own
    /// (0 = ONNX Runtime's default: one per core).
    #[arg(long, env = "CONVOY_INTRA_OP_THREADS", default_value_t = 1)]
    pub intra_op_threads: usize,

    /// Threads for pre- and post-processing (tokenize, decode, pool, softmax).
    /// Default: one per core.
    #[arg(long, env = "CONVOY_PRE_THREADS")]
    pub pre_threads: Option<usize>,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "CONVOY_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds to finish in-flight requests after SIGTERM/Ctrl-C before exiting.
    #[arg(long, env = "CONVOY_SHUTDOWN_TIMEOUT_S", default_value_t = 30)]
    pub shutdown_timeout_s: u64,

    /// Record no metrics (`/metrics` then serves an empty page): for measuring what
    /// recording costs.
    #[arg(long, env = "CONVOY_DISABLE_METRICS")]
    pub disable_metrics: bool,

    /// API key for bearer auth (repeatable; `CONVOY_API_KEYS` takes a comma-separated
    /// list). With none (and no key file), auth is off.
    #[arg(
        long = "api-key",
        env = "CONVOY_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// File with API keys, one per line (`#` comments allowed).
    #[arg(long, env = "CONVOY_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Require the API key on /v2/health/* too.
    #[arg(long, env = "CONVOY_AUTH_HEALTH")]
    pub auth_health: bool,

    /// Require the API key on /metrics too.
    #[arg(long, env = "CONVOY_AUTH_METRICS")]
    pub auth_metrics: bool,

    /// Origin allowed to call Convoy from a browser (repeatable). None: CORS is off.
    #[arg(
        long = "cors-origin",
        env = "CONVOY_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Log format.
    #[arg(long, env = "CONVOY_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl ServeConfig {
    /// A configuration with every default, for embedding and tests.
    pub fn defaults() -> ServeConfig {
        ServeConfig::parse_from(["serve"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_validate() {
        let cli = Cli::try_parse_from(["convoy", "serve", "--port", "9000", "--device", "cuda:1"])
            .unwrap();
        let Command::Serve(c) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(c.port, 9000);
        assert_eq!(c.device, Device::Cuda(1));
        let err = Cli::try_parse_from(["convoy", "serve", "--device", "tpu"]).unwrap_err();
        assert!(err.to_string().contains("tpu"));
    }

    #[test]
    fn defaults_serve_the_shipped_repository() {
        let c = ServeConfig::defaults();
        assert_eq!(c.port, 8000);
        assert_eq!(c.model_repository, PathBuf::from("models"));
        assert_eq!(c.device, Device::Auto);
    }
}
