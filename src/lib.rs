//! Convoy: an HTTP/JSON model-serving server. Requests arrive one at a time; the
//! batcher turns them into batches for ONNX Runtime and hands each caller its own rows.
//! See docs/ARCHITECTURE.md for the map; `run` is the whole server.

pub mod backend;
pub mod batching;
pub mod config;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pipeline;
pub mod repository;
pub mod service;
pub mod tensor;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::backend::ort::{resolve_library, Runtime};
use crate::backend::BackendFactory;
use crate::config::ServeConfig;
use crate::http::{router, AppState, ServerInfo};
use crate::repository::{LoadOptions, Repository};

/// Loads ONNX Runtime and the model repository: everything before the first request.
pub fn prepare(config: &ServeConfig) -> anyhow::Result<AppState> {
    // First: metric handles registered before the recorder exists would be no-ops.
    let metrics = metrics::install(!config.disable_metrics);
    let library = resolve_library(config.ort_lib.as_deref());
    let runtime = Runtime::init(&library)?;
    state_with(config, Arc::new(runtime), metrics)
}

/// [`prepare`] with sessions from `factory` instead of ONNX Runtime (which is then
/// never loaded, and `config.ort_lib` is not read): with
/// [`backend::fake::FakeFactory`], a whole server for tests that need no runtime
/// library and no model files beyond each `model.toml`.
pub fn prepare_with(
    config: &ServeConfig,
    factory: Arc<dyn BackendFactory>,
) -> anyhow::Result<AppState> {
    let metrics = metrics::install(!config.disable_metrics);
    state_with(config, factory, metrics)
}

fn state_with(
    config: &ServeConfig,
    factory: Arc<dyn BackendFactory>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<AppState> {
    let backend = factory.describe();
    let opts = LoadOptions {
        device: config.device,
        intra_op_threads: config.intra_op_threads,
    };
    let repo = Repository::load(&config.model_repository, factory, &opts).with_context(|| {
        format!(
            "loading the model repository {}",
            config.model_repository.display()
        )
    })?;
    let pool = crate::pipeline::pool::CpuPool::new(
        config
            .pre_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
    );
    Ok(AppState {
        core: Arc::new(crate::service::Core::new(Arc::new(repo), pool)),
        metrics,
        server: Arc::new(ServerInfo {
            device_requested: config.device.to_string(),
            ort_library: backend.library,
            cuda_available: backend.cuda_available,
        }),
        max_body_bytes: config.max_body_bytes,
        auth: Arc::new(crate::http::auth::AuthPolicy {
            keys: crate::http::auth::load_keys(&config.api_keys, config.api_key_file.as_deref())
                .map_err(anyhow::Error::msg)?,
            health: config.auth_health,
            metrics: config.auth_metrics,
        }),
        cors_origins: config.cors_origins.clone(),
    })
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains: readiness turns
/// false, new requests get 503, queued ones finish, within `shutdown_timeout`.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    let app = router(state.clone());
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let core = state.core.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        core.start_draining();
        let _ = drained_tx.send(());
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result.context("HTTP server")?,
        _ = async {
            let _ = drained_rx.await;
            tokio::time::sleep(shutdown_timeout).await;
        } => {
            tracing::warn!(timeout = ?shutdown_timeout, "drain timed out; exiting with requests in flight");
        }
    }
    Ok(())
}

/// `convoy serve`: prepare, bind, serve until SIGTERM or Ctrl-C.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let state = prepare(&config)?;
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %bound, models = state.core.repository().snapshot().len(), "convoy listening");
    serve(
        state,
        listener,
        shutdown_signal(),
        Duration::from_secs(config.shutdown_timeout_s),
    )
    .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
