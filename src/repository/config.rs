//! `model.toml`: what a model declares about itself, parsed and validated before any
//! session is created, so that a bad file fails startup naming the file and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::backend::{ArenaExtend, ConvAlgoSearch, CudaOptions};
use crate::tensor::DataType;

/// Errors of the model repository layer: every message names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: the model and its config disagree: {message}")]
    Mismatch { path: PathBuf, message: String },
    #[error("{path}: ONNX Runtime could not load the model: {message}")]
    Load { path: PathBuf, message: String },
}

/// The file as written (serde shape). Validated into [`ModelConfig`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: Option<String>,
    #[serde(default = "default_platform")]
    platform: String,
    #[serde(default = "default_file")]
    file: String,
    #[serde(default = "default_version")]
    version: String,
    max_batch_size: usize,
    dynamic_batching: Option<RawBatching>,
    #[serde(default, rename = "input")]
    inputs: Vec<RawTensor>,
    #[serde(default, rename = "output")]
    outputs: Vec<RawTensor>,
    #[serde(default)]
    instances: RawInstances,
    pipeline: Option<crate::pipeline::PipelineConfig>,
    #[serde(default)]
    cuda: RawCuda,
}

/// `[cuda]`: CUDA execution provider options, ONNX Runtime's names; used only when the
/// model's sessions run on CUDA.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCuda {
    gpu_mem_limit: Option<u64>,
    arena_extend_strategy: Option<String>,
    cudnn_conv_algo_search: Option<String>,
    cudnn_conv_use_max_workspace: Option<bool>,
    use_tf32: Option<bool>,
    io_binding: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatching {
    #[serde(default)]
    max_queue_delay_us: u64,
    #[serde(default)]
    preferred_batch_sizes: Vec<usize>,
    #[serde(default = "default_queue_size")]
    max_queue_size: usize,
    latency_target_ms: Option<f64>,
    #[serde(default)]
    shed_beyond_target: bool,
    max_queue_tokens: Option<usize>,
    default_timeout_us: Option<u64>,
    #[serde(default = "one")]
    priority_levels: u32,
    #[serde(default = "one")]
    default_priority_level: u32,
    #[serde(default = "default_aging_us")]
    priority_aging_us: u64,
}

fn one() -> u32 {
    1
}
fn default_aging_us() -> u64 {
    crate::batching::config::DEFAULT_PRIORITY_AGING.as_micros() as u64
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTensor {
    name: String,
    datatype: String,
    dims: Vec<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstances {
    count: Option<usize>,
    intra_op_threads: Option<usize>,
}

fn default_platform() -> String {
    "onnxruntime_onnx".into()
}
fn default_file() -> String {
    "model.onnx".into()
}
fn default_version() -> String {
    "1".into()
}
fn default_queue_size() -> usize {
    DEFAULT_QUEUE_ROWS
}

pub use crate::batching::config::{BatchingConfig, DEFAULT_QUEUE_ROWS};

pub use crate::tensor::TensorSpec;

/// Device workers of this model.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceConfig {
    /// Sessions (each on its own worker thread) fed by one scheduler. `None`: 1 on CPU
    /// (intra-op threads already use the cores), 2 on CUDA (one batch copies while
    /// another computes).
    pub count: Option<usize>,
    /// ONNX Runtime intra-op threads per session (0 = the server default).
    pub intra_op_threads: usize,
}

/// Validates `[cuda]` into the backend's options.
fn cuda_options(raw: RawCuda) -> Result<CudaOptions, String> {
    if raw.gpu_mem_limit == Some(0) {
        return Err(
            "field `cuda.gpu_mem_limit`: expected a positive number of bytes, got 0".into(),
        );
    }
    let arena_extend_strategy = match raw.arena_extend_strategy.as_deref() {
        None => None,
        Some("next_power_of_two") => Some(ArenaExtend::NextPowerOfTwo),
        Some("same_as_requested") => Some(ArenaExtend::SameAsRequested),
        Some(other) => {
            return Err(format!(
                "field `cuda.arena_extend_strategy`: expected \"next_power_of_two\" or \"same_as_requested\", got {other:?}"
            ))
        }
    };
    let cudnn_conv_algo_search = match raw.cudnn_conv_algo_search.as_deref() {
        None => None,
        Some("exhaustive") => Some(ConvAlgoSearch::Exhaustive),
        Some("heuristic") => Some(ConvAlgoSearch::Heuristic),
        Some("default") => Some(ConvAlgoSearch::Default),
        Some(other) => {
            return Err(format!(
                "field `cuda.cudnn_conv_algo_search`: expected \"exhaustive\", \"heuristic\" or \"default\", got {other:?}"
            ))
        }
    };
    Ok(CudaOptions {
        gpu_mem_limit: raw.gpu_mem_limit,
        arena_extend_strategy,
        cudnn_conv_algo_search,
        cudnn_conv_use_max_workspace: raw.cudnn_conv_use_max_workspace,
        use_tf32: raw.use_tf32,
        io_binding: raw.io_binding.unwrap_or(true),
    })
}

/// A validated `model.toml`. Empty `inputs`/`outputs` mean "take them from the graph".
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub name: String,
    pub version: String,
    pub platform: String,
    /// The model file, resolved against the model's directory.
    pub model_path: PathBuf,
    pub batching: BatchingConfig,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub instances: InstanceConfig,
    /// Pre/post-processing stages, checked for kinds and parameters (files are read
    /// when the model loads).
    pub pipeline: Option<crate::pipeline::PipelineConfig>,
    /// CUDA execution provider options (`[cuda]`), applied when the model runs on CUDA.
    pub cuda: CudaOptions,
}

impl ModelConfig {
    /// Reads and validates `dir/model.toml`; the model's name defaults to the directory's.
    pub fn load(dir: &Path) -> Result<ModelConfig, RepositoryError> {
        let path = dir.join("model.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| RepositoryError::Io {
            path: path.clone(),
            source,
        })?;
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        ModelConfig::parse(&text, &path, &dir_name)
    }

    /// Parses `text` (the content of `path`) for a model whose directory is `dir_name`.
    pub fn parse(text: &str, path: &Path, dir_name: &str) -> Result<ModelConfig, RepositoryError> {
        let invalid = |message: String| RepositoryError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;

        let name = raw.name.unwrap_or_else(|| dir_name.to_string());
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(format!(
                "field `name`: expected letters, digits, '-', '_' or '.', got {name:?}"
            )));
        }
        if raw.platform != "onnxruntime_onnx" {
            return Err(invalid(format!(
                "field `platform`: expected \"onnxruntime_onnx\", got {:?}",
                raw.platform
            )));
        }
        if raw.version.is_empty() || !raw.version.chars().all(|c| c.is_ascii_digit()) {
            return Err(invalid(format!(
                "field `version`: expected a positive integer as a string, got {:?}",
                raw.version
            )));
        }
        if raw.max_batch_size == 0 {
            return Err(invalid(
                "field `max_batch_size`: expected at least 1, got 0".into(),
            ));
        }
        let batching = match raw.dynamic_batching {
            None => BatchingConfig {
                max_batch_size: raw.max_batch_size,
                ..BatchingConfig::default()
            },
            Some(b) => batching_config(b, raw.max_batch_size).map_err(invalid)?,
        };

        let inputs = tensor_specs(&raw.inputs, "input", &invalid)?;
        let outputs = tensor_specs(&raw.outputs, "output", &invalid)?;

        if let Some(count) = raw.instances.count.filter(|c| !(1..=64).contains(c)) {
            return Err(invalid(format!(
                "field `instances.count`: expected 1..=64, got {count}"
            )));
        }
        if let Some(p) = &raw.pipeline {
            crate::pipeline::Pipeline::validate(p).map_err(invalid)?;
        }
        let cuda = cuda_options(raw.cuda).map_err(invalid)?;
        let model_path = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&raw.file);
        Ok(ModelConfig {
            name,
            version: raw.version,
            platform: raw.platform,
            model_path,
            batching,
            inputs,
            outputs,
            instances: InstanceConfig {
                count: raw.instances.count,
                intra_op_threads: raw.instances.intra_op_threads.unwrap_or(0),
            },
            pipeline: raw.pipeline,
            cuda,
        })
    }
}

/// `[dynamic_batching]`, checked: errors name the field, the bound and the given value.
fn batching_config(b: RawBatching, max_batch_size: usize) -> Result<BatchingConfig, String> {
    let invalid = |message: String| message;
    let mut preferred = b.preferred_batch_sizes;
    preferred.sort_unstable();
    preferred.dedup();
    if let Some(bad) = preferred.iter().find(|&&p| p == 0 || p > max_batch_size) {
        return Err(invalid(format!(
            "field `dynamic_batching.preferred_batch_sizes`: expected sizes in 1..={}, got {bad}",
            max_batch_size
        )));
    }
    if b.max_queue_size < max_batch_size {
        return Err(invalid(format!(
                "field `dynamic_batching.max_queue_size`: expected at least max_batch_size ({}), got {}",
                max_batch_size, b.max_queue_size
            )));
    }
    if b.max_queue_delay_us > 10_000_000 {
        return Err(invalid(format!(
            "field `dynamic_batching.max_queue_delay_us`: expected at most 10000000 (10 s), got {}",
            b.max_queue_delay_us
        )));
    }
    let latency_target = match b.latency_target_ms {
            None => None,
            Some(ms) if ms.is_finite() && ms > 0.0 && ms <= 600_000.0 => {
                Some(Duration::from_secs_f64(ms / 1000.0))
            }
            Some(ms) => {
                return Err(invalid(format!(
                    "field `dynamic_batching.latency_target_ms`: expected a number in (0, 600000], got {ms}"
                )))
            }
        };
    if b.shed_beyond_target && latency_target.is_none() {
        return Err(invalid(
                "field `dynamic_batching.shed_beyond_target`: expected `latency_target_ms` to be set as well (the prediction is checked against it), got no target".into(),
            ));
    }
    if b.priority_levels == 0 || b.priority_levels > 16 {
        return Err(invalid(format!(
            "field `dynamic_batching.priority_levels`: expected 1..=16, got {}",
            b.priority_levels
        )));
    }
    if b.default_priority_level == 0 || b.default_priority_level > b.priority_levels {
        return Err(invalid(format!(
                "field `dynamic_batching.default_priority_level`: expected 1..={} (priority_levels), got {}",
                b.priority_levels, b.default_priority_level
            )));
    }
    if b.default_timeout_us == Some(0) {
        return Err(invalid(
                "field `dynamic_batching.default_timeout_us`: expected a positive number of microseconds, got 0".into(),
            ));
    }
    Ok(BatchingConfig {
        max_batch_size,
        dynamic: max_batch_size > 1,
        max_queue_delay: Duration::from_micros(b.max_queue_delay_us),
        preferred_batch_sizes: preferred,
        max_queue_rows: b.max_queue_size,
        max_queue_tokens: b.max_queue_tokens,
        latency_target,
        shed_beyond_target: b.shed_beyond_target,
        default_timeout: b.default_timeout_us.map(Duration::from_micros),
        priority_levels: b.priority_levels,
        default_priority: b.default_priority_level,
        priority_aging: Duration::from_micros(b.priority_aging_us),
        ragged: false,
    })
}

fn tensor_specs(
    raw: &[RawTensor],
    table: &str,
    invalid: &dyn Fn(String) -> RepositoryError,
) -> Result<Vec<TensorSpec>, RepositoryError> {
    let mut specs: Vec<TensorSpec> = Vec::with_capacity(raw.len());
    for (i, t) in raw.iter().enumerate() {
        let datatype = DataType::parse(&t.datatype).ok_or_else(|| {
            let allowed: Vec<&str> = DataType::ALL.iter().map(|d| d.as_str()).collect();
            invalid(format!(
                "field `{table}[{i}].datatype`: expected one of {}, got {:?}",
                allowed.join(", "),
                t.datatype
            ))
        })?;
        if let Some(d) = t.dims.iter().find(|&&d| d == 0 || d < -1) {
            return Err(invalid(format!(
                "field `{table}[{i}].dims`: expected positive sizes or -1 (dynamic), got {d}"
            )));
        }
        if specs.iter().any(|s| s.name == t.name) {
            return Err(invalid(format!(
                "field `{table}[{i}].name`: {:?} is declared twice",
                t.name
            )));
        }
        specs.push(TensorSpec {
            name: t.name.clone(),
            datatype,
            dims: t.dims.clone(),
        });
    }
    Ok(specs)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
