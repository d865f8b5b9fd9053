//! The model repository: `models/<name>/model.toml` + model file, discovered at startup,
//! each model cross-checked against what its ONNX graph declares, then given its
//! sessions and batcher.

pub mod config;
pub mod reconcile;
pub mod served;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::backend::{Backend, BackendError, BackendFactory, Device, GraphTensor, SessionSpec};
use crate::batching::Batcher;
use crate::metrics;
use crate::pipeline::Pipeline;
pub use config::{ModelConfig, RepositoryError, TensorSpec};

/// A model that serves.
pub struct Model {
    /// The config, with inputs/outputs completed from the graph, in graph order.
    pub config: ModelConfig,
    /// The device its sessions really run on.
    pub device: Device,
    /// Device workers (sessions) feeding from its queue.
    pub instances: usize,
    /// Pre/post-processing stages, when `model.toml` declares them.
    pub pipeline: Option<Pipeline>,
    /// The tensors its doors show and check requests against.
    pub served: served::Served,
    pub batcher: Batcher,
}

/// The last handle on a model going away (unloaded or replaced, and every request that
/// held it answered) closes its queue: the scheduler runs what is queued, then its
/// threads and sessions end. Handlers that looked the model up before a swap can still
/// submit to it, so a reload loses nothing.
impl Drop for Model {
    fn drop(&mut self) {
        self.batcher.shutdown();
    }
}

/// A repository entry: serving, or failed to load (and says why).
#[derive(Clone)]
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

/// One line of the repository index (Triton's repository extension).
#[derive(Clone, Debug, PartialEq)]
pub struct IndexEntry {
    pub name: String,
    pub version: String,
    /// READY, or UNAVAILABLE (failed to load, or not loaded).
    pub state: &'static str,
    /// Why it is unavailable; empty when ready.
    pub reason: String,
}

/// Errors of model control (load/unload), as the admin routes report them.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("model {0:?} is not in the repository")]
    NotFound(String),
    #[error("model {0:?} is not loaded")]
    NotLoaded(String),
    #[error("{0}")]
    Invalid(RepositoryError),
    #[error("model {name:?} failed to load: {message}")]
    Failed { name: String, message: String },
}

/// All models of one repository directory. Models can be loaded, reloaded and unloaded
/// while serving; readers take a cheap snapshot (an `Arc` clone) under a short lock.
pub struct Repository {
    pub root: PathBuf,
    factory: Arc<dyn BackendFactory>,
    opts: LoadOptions,
    models: RwLock<BTreeMap<String, ModelState>>,
    /// Serializes load/unload so two admin calls cannot interleave their swaps.
    control: Mutex<()>,
}

impl Repository {
    /// Reads every `<root>/<dir>/model.toml` and opens each model's sessions through
    /// `factory`. Config errors (a bad field, a graph that disagrees with its config)
    /// fail the whole load; a model file the backend cannot load leaves that one model
    /// `Failed`.
    pub fn load(
        root: &Path,
        factory: Arc<dyn BackendFactory>,
        opts: &LoadOptions,
    ) -> Result<Repository, RepositoryError> {
        let configs = discover(root)?;
        if configs.is_empty() {
            return Err(RepositoryError::Invalid {
                path: root.to_path_buf(),
                message: "no model found (expected <name>/model.toml folders)".into(),
            });
        }
        let mut models = BTreeMap::new();
        for config in configs {
            let name = config.name.clone();
            let state = match load_one(config.clone(), factory.as_ref(), opts) {
                Ok(state) => state,
                Err(StartError::Config(e)) => return Err(e),
                Err(StartError::Backend(e)) => {
                    // An explicit `--device cuda` that cannot work is a startup error.
                    return Err(RepositoryError::Load {
                        path: config.model_path.clone(),
                        message: e.to_string(),
                    });
                }
            };
            models.insert(name, state);
        }
        Ok(Repository {
            root: root.to_path_buf(),
            factory,
            opts: opts.clone(),
            models: RwLock::new(models),
            control: Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ModelState>> {
        self.models.read().expect("repository lock")
    }

    /// The entry called `name`, if loaded (serving or failed).
    pub fn get(&self, name: &str) -> Option<ModelState> {
        self.read().get(name).cloned()
    }

    /// The serving model called `name`, if any.
    pub fn ready(&self, name: &str) -> Option<Arc<Model>> {
        match self.read().get(name) {
            Some(ModelState::Ready(m)) => Some(m.clone()),
            _ => None,
        }
    }

    /// Every loaded entry, by name.
    pub fn snapshot(&self) -> Vec<(String, ModelState)> {
        self.read()
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect()
    }

    /// True when every loaded model serves.
    pub fn all_ready(&self) -> bool {
        self.read()
            .values()
            .all(|m| matches!(m, ModelState::Ready(_)))
    }

    /// Every model on disk and in memory, with its state.
    pub fn index(&self) -> Vec<IndexEntry> {
        let loaded = self.snapshot();
        let mut index: BTreeMap<String, IndexEntry> = BTreeMap::new();
        for c in discover(&self.root).unwrap_or_default() {
            index.insert(
                c.name.clone(),
                IndexEntry {
                    name: c.name,
                    version: c.version,
                    state: "UNAVAILABLE",
                    reason: "unloaded".into(),
                },
            );
        }
        for (name, state) in loaded {
            let entry = match state {
                ModelState::Ready(m) => IndexEntry {
                    name: name.clone(),
                    version: m.config.version.clone(),
                    state: "READY",
                    reason: String::new(),
                },
                ModelState::Failed { config, error } => IndexEntry {
                    name: name.clone(),
                    version: config.version.clone(),
                    state: "UNAVAILABLE",
                    reason: error,
                },
            };
            index.insert(name, entry);
        }
        index.into_values().collect()
    }

    /// Loads (or reloads) `name` from disk. On reload the new sessions are created
    /// first and swapped in atomically; the old batcher then drains what it had queued,
    /// so no admitted request is lost. Blocking (creates sessions): call it off the
    /// async runtime.
    pub fn load_model(&self, name: &str) -> Result<(), ControlError> {
        let _serial = self.control.lock().expect("control lock");
        let config = discover(&self.root)
            .map_err(ControlError::Invalid)?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ControlError::NotFound(name.to_string()))?;
        let state = match load_one(config, self.factory.as_ref(), &self.opts) {
            Ok(ModelState::Failed { error, .. }) => {
                return Err(ControlError::Failed {
                    name: name.to_string(),
                    message: error,
                })
            }
            Ok(state) => state,
            Err(StartError::Config(e)) => return Err(ControlError::Invalid(e)),
            Err(StartError::Backend(e)) => {
                return Err(ControlError::Failed {
                    name: name.to_string(),
                    message: e.to_string(),
                })
            }
        };
        // The old model (if any) drains and stops once its last request is answered.
        let old = self
            .models
            .write()
            .expect("repository lock")
            .insert(name.to_string(), state);
        drop(old);
        tracing::info!(model = name, "model (re)loaded");
        Ok(())
    }

    /// Unloads `name`: new requests get 404, queued ones still run.
    pub fn unload_model(&self, name: &str) -> Result<(), ControlError> {
        let _serial = self.control.lock().expect("control lock");
        let old = self.models.write().expect("repository lock").remove(name);
        match old {
            None => Err(ControlError::NotLoaded(name.to_string())),
            Some(state) => {
                // Queued requests still run: see `Drop for Model`.
                drop(state);
                metrics::model_loaded(name, false, std::time::Duration::ZERO, None);
                tracing::info!(model = name, "model unloaded");
                Ok(())
            }
        }
    }

    /// Stops taking requests; queued ones still run.
    pub fn shutdown(&self) {
        for state in self.read().values() {
            if let ModelState::Ready(m) = state {
                m.batcher.shutdown();
            }
        }
    }
}

/// Starts one model: `Ready`, or `Failed` when the backend cannot load its model under
/// `--device auto`/`cpu`. Errors: a config the graph contradicts, or a device that
/// was asked for explicitly and cannot work.
fn load_one(
    config: ModelConfig,
    factory: &dyn BackendFactory,
    opts: &LoadOptions,
) -> Result<ModelState, StartError> {
    let name = config.name.clone();
    let started = std::time::Instant::now();
    let state = match start_model(config.clone(), factory, opts) {
        Ok(model) => {
            tracing::info!(model = %name, device = %model.device, instances = model.instances,
                max_batch_size = model.config.batching.max_batch_size, "model ready");
            ModelState::Ready(Arc::new(model))
        }
        Err(StartError::Backend(e))
            if !(matches!(e, BackendError::Device { .. }) && opts.device != Device::Auto) =>
        {
            tracing::error!(model = %name, error = %e, "model failed to load; the others still serve");
            ModelState::Failed {
                config: Box::new(config),
                error: e.to_string(),
            }
        }
        Err(e) => return Err(e),
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
    Ok(state)
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
    Ok(configs)
}

enum StartError {
    Config(RepositoryError),
    Backend(BackendError),
}

/// What the backend needs to open `config`'s sessions: its file, threads (the model's
/// `instances.intra_op_threads`, else `default_threads`), `[cuda]` options, and the
/// tensors it declares (batch dimension first, as -1).
pub fn session_spec(config: &ModelConfig, default_threads: usize) -> SessionSpec {
    let declared = |specs: &[TensorSpec]| -> Vec<GraphTensor> {
        specs
            .iter()
            .map(|t| GraphTensor {
                name: t.name.clone(),
                datatype: Some(t.datatype),
                shape: std::iter::once(-1).chain(t.dims.iter().copied()).collect(),
            })
            .collect()
    };
    SessionSpec {
        name: config.name.clone(),
        model_path: config.model_path.clone(),
        intra_op_threads: match config.instances.intra_op_threads {
            0 => default_threads,
            n => n,
        },
        cuda: config.cuda.clone(),
        declared_inputs: declared(&config.inputs),
        declared_outputs: declared(&config.outputs),
    }
}

fn start_model(
    mut config: ModelConfig,
    factory: &dyn BackendFactory,
    opts: &LoadOptions,
) -> Result<Model, StartError> {
    let spec = session_spec(&config, opts.intra_op_threads);
    let first = factory
        .session(&spec, opts.device)
        .map_err(StartError::Backend)?;
    let device = first.device;
    let count = config.instances.count.unwrap_or(match device {
        Device::Cuda(_) => 2,
        _ => 1,
    });
    let (graph_inputs, graph_outputs) = (first.inputs, first.outputs);
    let mut backends: Vec<Box<dyn Backend>> = Vec::with_capacity(count);
    backends.push(first.backend);
    while backends.len() < count {
        // The rest go where the first one went.
        let session = factory
            .session(&spec, device)
            .map_err(StartError::Backend)?;
        backends.push(session.backend);
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
        reconcile::specs(&config.inputs, &graph_inputs, "input", max).map_err(mismatch)?;
    config.outputs =
        reconcile::specs(&config.outputs, &graph_outputs, "output", max).map_err(mismatch)?;
    let pipeline = match &config.pipeline {
        None => None,
        Some(p) => {
            let dir = config.model_path.parent().unwrap_or_else(|| Path::new("."));
            let pipeline =
                Pipeline::load(p, dir, &config.inputs, &config.outputs).map_err(mismatch)?;
            config.batching.ragged = pipeline.ragged();
            Some(pipeline)
        }
    };
    let batcher = Batcher::start(&config.name, config.batching.clone(), backends);
    Ok(Model {
        served: served::served(&config, pipeline.as_ref()),
        pipeline,
        config,
        device,
        instances: count,
        batcher,
    })
}
