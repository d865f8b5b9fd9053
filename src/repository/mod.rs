//! The model repository: `models/<name>/model.toml` + model file, discovered at startup,
//! each model cross-checked against what its ONNX graph declares, then given its
//! sessions and batcher.

pub mod config;
pub mod reconcile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::ort::{OrtBackend, Runtime};
use crate::backend::{BackendError, Device};
use crate::batching::Batcher;
use crate::metrics;
pub use config::{ModelConfig, RepositoryError, TensorSpec};

/// A model that serves.
pub struct Model {
    /// The config, with inputs/outputs completed from the graph, in graph order.
    pub config: ModelConfig,
    /// The device its sessions really run on.
    pub device: Device,
    pub batcher: Batcher,
}

/// A repository entry: serving, or failed to load (and says why).
pub enum ModelState {
    Ready(Arc<Model>),
    /// ONNX Runtime could not load the model file; the other models still serve.
    Failed {
        config: Box<ModelConfig>,
        error: String,
    },
}

/// How sessions are created.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub device: Device,
    /// Intra-op threads for models whose `model.toml` leaves it at 0.
    pub intra_op_threads: usize,
}

/// All models of one repository directory.
pub struct Repository {
    pub root: PathBuf,
    pub models: BTreeMap<String, ModelState>,
}

impl Repository {
    /// Reads every `<root>/<dir>/model.toml`. Config errors (a bad field, a graph that
    /// disagrees with its config) fail the whole load; a model file ONNX Runtime cannot
    /// load leaves that one model `Failed`. Must run inside a tokio runtime.
    pub fn load(
        root: &Path,
        runtime: &Runtime,
        opts: &LoadOptions,
    ) -> Result<Repository, RepositoryError> {
        let configs = discover(root)?;
        let mut models = BTreeMap::new();
        for config in configs {
            let name = config.name.clone();
            let started = std::time::Instant::now();
            let state = match start_model(config.clone(), runtime, opts) {
                Ok(model) => {
                    tracing::info!(model = %name, device = %model.device, instances = model.config.instances.count,
                        max_batch_size = model.config.batching.max_batch_size, "model ready");
                    ModelState::Ready(Arc::new(model))
                }
                Err(StartError::Config(e)) => return Err(e),
                Err(StartError::Backend(e)) => {
                    // An explicit `--device cuda` that cannot work is a startup error.
                    if matches!(e, BackendError::Device { .. }) && opts.device != Device::Auto {
                        return Err(RepositoryError::Load {
                            path: config.model_path.clone(),
                            message: e.to_string(),
                        });
                    }
                    tracing::error!(model = %name, error = %e, "model failed to load; the others still serve");
                    ModelState::Failed {
                        config: Box::new(config),
                        error: e.to_string(),
                    }
                }
            };
            let device = match &state {
                ModelState::Ready(m) => Some(m.device.to_string()),
                ModelState::Failed { .. } => None,
            };
            metrics::model_loaded(
                &name,
                device.is_some(),
                started.elapsed(),
                device.as_deref(),
            );
            models.insert(name, state);
        }
        Ok(Repository {
            root: root.to_path_buf(),
            models,
        })
    }

    /// The serving model called `name`, if any.
    pub fn ready(&self, name: &str) -> Option<&Arc<Model>> {
        match self.models.get(name) {
            Some(ModelState::Ready(m)) => Some(m),
            _ => None,
        }
    }

    /// True when every model serves.
    pub fn all_ready(&self) -> bool {
        self.models
            .values()
            .all(|m| matches!(m, ModelState::Ready(_)))
    }

    /// Stops taking requests; queued ones still run.
    pub fn shutdown(&self) {
        for state in self.models.values() {
            if let ModelState::Ready(m) = state {
                m.batcher.shutdown();
            }
        }
    }
}

/// Parses every model config under `root`, sorted by directory name.
fn discover(root: &Path) -> Result<Vec<ModelConfig>, RepositoryError> {
    let io = |source| RepositoryError::Io {
        path: root.to_path_buf(),
        source,
    };
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.toml").is_file())
        .collect();
    dirs.sort();
    let mut configs: Vec<ModelConfig> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let config = ModelConfig::load(&dir)?;
        if configs.iter().any(|c| c.name == config.name) {
            return Err(RepositoryError::Invalid {
                path: dir.join("model.toml"),
                message: format!("field `name`: model {:?} is declared twice", config.name),
            });
        }
        configs.push(config);
    }
    if configs.is_empty() {
        return Err(RepositoryError::Invalid {
            path: root.to_path_buf(),
            message: "no model found (expected <name>/model.toml folders)".into(),
        });
    }
    Ok(configs)
}

enum StartError {
    Config(RepositoryError),
    Backend(BackendError),
}

fn start_model(
    mut config: ModelConfig,
    runtime: &Runtime,
    opts: &LoadOptions,
) -> Result<Model, StartError> {
    if !config.model_path.is_file() {
        return Err(StartError::Backend(BackendError::Run(format!(
            "{}: model file not found",
            config.model_path.display()
        ))));
    }
    let threads = match config.instances.intra_op_threads {
        0 => opts.intra_op_threads,
        n => n,
    };
    let mut backends: Vec<OrtBackend> = Vec::with_capacity(config.instances.count);
    let mut device = opts.device;
    for _ in 0..config.instances.count {
        let (backend, used) = runtime
            .session(&config, device, threads)
            .map_err(StartError::Backend)?;
        // All instances go where the first one went.
        device = used;
        backends.push(backend);
    }
    let toml = config.model_path.with_file_name("model.toml");
    let mismatch = |message: String| {
        StartError::Config(RepositoryError::Mismatch {
            path: toml.clone(),
            message,
        })
    };
    let max = config.batching.max_batch_size;
    config.inputs =
        reconcile::specs(&config.inputs, &backends[0].inputs, "input", max).map_err(mismatch)?;
    config.outputs =
        reconcile::specs(&config.outputs, &backends[0].outputs, "output", max).map_err(mismatch)?;
    let batcher = Batcher::start(&config.name, config.batching.clone(), backends);
    Ok(Model {
        config,
        device,
        batcher,
    })
}
