//! The core: one `infer` behind every front door. A door decodes its wire format into a
//! [`Request`], calls [`Core::infer`], and encodes the [`Response`]; everything that must
//! behave alike on every door lives here, once: model lookup, validation, output
//! selection, scheduling, the pipeline stages, in-flight counting, outcome metrics and
//! per-model statistics.
//!
//! ```text
//! door ── Request ──▶ Core::infer ── lookup ── validate ──▶ plain: one entry
//!                         │                           └──▶ pipeline: pre-stage on the CPU
//!                         │                                pool, entries, post-stage
//!                         └── counted (in flight, outcome, stats) ◀── Response
//! ```

mod errors;
mod plain;
pub mod request;
mod run;
pub mod schedule;
mod stages;
pub mod validate;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use crate::repository::served::Served;
pub use request::{Input, Output, OutputRequest, Request, Response, Schedule, Timing};

use crate::error::{Error, Result};
use crate::metrics::{self, ModelMetrics};
use crate::pipeline::pool::CpuPool;
use crate::repository::{Model, ModelState, Repository};

/// The models and the machinery every door shares.
pub struct Core {
    repo: Arc<Repository>,
    /// The CPU pool pre- and post-processing run on.
    pool: CpuPool,
    /// Set when draining starts: readiness turns false, new requests get 503.
    draining: AtomicBool,
}

impl Core {
    pub fn new(repo: Arc<Repository>, pool: CpuPool) -> Core {
        Core {
            repo,
            pool,
            draining: AtomicBool::new(false),
        }
    }

    pub fn repository(&self) -> &Arc<Repository> {
        &self.repo
    }

    /// Stops taking requests: every door answers 503; what is queued still runs.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.repo.shutdown();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The serving model `name` (and `version`, when given): 404 when unknown, 503 when
    /// it failed to load.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<Model>> {
        let state = self.repo.get(name).ok_or_else(|| model_not_found(name))?;
        let config = match &state {
            ModelState::Ready(m) => &m.config,
            ModelState::Failed { config, .. } => config.as_ref(),
        };
        if let Some(v) = version {
            if v != config.version {
                return Err(Error::not_found(format!(
                    "model {name:?} has no version {v:?} (versions: {:?})",
                    config.version
                )));
            }
        }
        match state {
            ModelState::Ready(m) => Ok(m),
            ModelState::Failed { .. } => Err(Error::unavailable(format!(
                "model {name:?} failed to load and is not serving; see the server log"
            ))),
        }
    }

    /// Runs one inference on `model`. `build` turns the door's input into the request
    /// and its schedule once the model is known (a door that needs the model's own
    /// names, such as tabular features, reads them there); `arrived` is when the door
    /// got it. Counted once here, however it ends: in flight while it runs, then its
    /// outcome and latency in metrics and the model's statistics.
    pub async fn infer<F>(
        &self,
        model: &str,
        version: Option<&str>,
        arrived: Instant,
        build: F,
    ) -> Result<Response>
    where
        F: FnOnce(&Model) -> Result<(Request, Schedule)>,
    {
        let found = self.model(model, version);
        // Counted under the model's own label whenever it serves, also when the version
        // asked for is not its own.
        let known = match &found {
            Ok(m) => Some(m.clone()),
            Err(_) => self.repo.ready(model),
        };
        let _in_flight = InFlight::enter(metrics_of(known.as_deref()));
        let result = self.infer_uncounted(found, build).await;
        record(known.as_deref(), arrived, result.as_ref().err());
        result
    }

    /// Counts a request refused before it could name its model (a body that does not
    /// parse), as [`Core::infer`] counts the others.
    pub fn refused(&self, arrived: Instant, error: Error) -> Error {
        record(None, arrived, Some(&error));
        error
    }

    async fn infer_uncounted<F>(&self, found: Result<Arc<Model>>, build: F) -> Result<Response>
    where
        F: FnOnce(&Model) -> Result<(Request, Schedule)>,
    {
        if self.is_draining() {
            return Err(Error::unavailable("server is shutting down"));
        }
        let m = found?;
        let model = m.config.name.as_str();
        let (request, schedule) = build(&m)?;
        let served = &m.served;
        // Outputs first, for every kind of model: a bad name costs no device time.
        let wanted = validate::outputs(
            model,
            request.outputs.as_deref(),
            &served.outputs,
            request.binary_default,
        )?;
        let response = match &m.pipeline {
            None => plain::infer(&m, request, served, &wanted, &schedule).await?,
            Some(_) => stages::infer(&self.pool, &m, request, served, &wanted, &schedule).await?,
        };
        tracing::debug!(
            model,
            rows = response.timing.batch_rows,
            queue_us = response.timing.queue_us,
            infer_us = response.timing.infer_us,
            total_us = schedule.arrived.elapsed().as_micros() as u64,
            "infer"
        );
        Ok(response)
    }
}

/// The 404 of a model name nothing serves (the served names are not listed: a client
/// without a key must not learn them from a typo).
pub fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("model {name:?} not found"))
}

/// Only served models get their own label value: cardinality stays bounded.
fn metrics_of(model: Option<&Model>) -> &Arc<ModelMetrics> {
    match model {
        Some(m) => m.batcher.metrics(),
        None => metrics::unknown_model(),
    }
}

/// A finished request's outcome, latency and (for a served model) statistics. Failures
/// count in the statistics only when the server is at fault (5xx), as Triton counts them.
fn record(model: Option<&Model>, arrived: Instant, error: Option<&Error>) {
    let mm = metrics_of(model);
    let elapsed = arrived.elapsed();
    match error {
        None => {
            mm.outcome("success");
            mm.request.record(elapsed.as_secs_f64());
            if let Some(m) = model {
                m.batcher.stats().record_request(true, elapsed);
            }
        }
        Some(e) => {
            mm.outcome(e.kind.label());
            if let (Some(m), true) = (model, e.kind.status() >= 500) {
                m.batcher.stats().record_request(false, elapsed);
            }
        }
    }
}

/// Decrements the in-flight gauge however the request ends (a client that hangs up
/// drops the door's future, and this with it).
struct InFlight(Arc<ModelMetrics>);

impl InFlight {
    fn enter(m: &Arc<ModelMetrics>) -> InFlight {
        m.in_flight.increment(1.0);
        InFlight(m.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.decrement(1.0);
    }
}
