//! Every metric Convoy exports, by name, with the handles that record them.
//!
//! Names are `convoy_<thing>_<unit>`; labels are `model` plus bounded sets (`outcome`,
//! `worker`, `device`). (`worker`, not `instance`: Prometheus owns `instance`.) Each model's handles are registered once ([`ModelMetrics`]), so
//! the hot path records without formatting or hashing label strings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ErrorKind;

pub const REQUESTS_TOTAL: &str = "convoy_requests_total";
pub const REQUESTS_IN_FLIGHT: &str = "convoy_requests_in_flight";
pub const REQUEST_DURATION: &str = "convoy_request_duration_seconds";
pub const QUEUE_DURATION: &str = "convoy_queue_duration_seconds";
pub const PREPROCESS_DURATION: &str = "convoy_preprocess_duration_seconds";
pub const INFERENCE_DURATION: &str = "convoy_inference_duration_seconds";
pub const POSTPROCESS_DURATION: &str = "convoy_postprocess_duration_seconds";
pub const BATCH_SIZE: &str = "convoy_batch_size_rows";
pub const QUEUE_DEPTH: &str = "convoy_queue_depth_rows";
pub const QUEUE_CAPACITY: &str = "convoy_queue_capacity_rows";
pub const DEVICE_BUSY_RATIO: &str = "convoy_device_busy_ratio";
pub const CANCELLED_TOTAL: &str = "convoy_cancelled_requests_total";
pub const EXPIRED_TOTAL: &str = "convoy_expired_requests_total";
/// Requests refused at admission because they were predicted to finish past the latency
/// target (`shed_beyond_target`); also counted under `convoy_requests_total`'s 429s.
pub const SHED_TOTAL: &str = "convoy_shed_requests_total";
pub const MODEL_READY: &str = "convoy_model_ready";
pub const MODEL_LOAD_DURATION: &str = "convoy_model_load_duration_seconds";
pub const MODEL_DEVICE: &str = "convoy_model_device";
pub const PADDING_RATIO: &str = "convoy_batch_padding_ratio";
pub const BATCH_COST_FIXED: &str = "convoy_batch_cost_fixed_seconds";
pub const BATCH_COST_PER_UNIT: &str = "convoy_batch_cost_per_unit_seconds";
/// Share of requests finding a worker idle that company followed (the idle-wait rule).
pub const BATCH_COMPANY_RATIO: &str = "convoy_batch_company_ratio";
/// Per GPU (label `gpu`, NVML's index), only where NVML is present.
pub const GPU_MEMORY_USED: &str = "convoy_gpu_memory_used_bytes";
pub const GPU_MEMORY_TOTAL: &str = "convoy_gpu_memory_total_bytes";
pub const GPU_UTILIZATION: &str = "convoy_gpu_utilization_ratio";

/// Every name above: the dashboards and alert rules are checked against this list.
pub const ALL: &[&str] = &[
    REQUESTS_TOTAL,
    REQUESTS_IN_FLIGHT,
    REQUEST_DURATION,
    QUEUE_DURATION,
    PREPROCESS_DURATION,
    INFERENCE_DURATION,
    POSTPROCESS_DURATION,
    BATCH_SIZE,
    QUEUE_DEPTH,
    QUEUE_CAPACITY,
    DEVICE_BUSY_RATIO,
    CANCELLED_TOTAL,
    EXPIRED_TOTAL,
    SHED_TOTAL,
    MODEL_READY,
    MODEL_LOAD_DURATION,
    MODEL_DEVICE,
    BATCH_COST_FIXED,
    BATCH_COST_PER_UNIT,
    BATCH_COMPANY_RATIO,
    PADDING_RATIO,
    GPU_MEMORY_USED,
    GPU_MEMORY_TOTAL,
    GPU_UTILIZATION,
];

/// Latency buckets for inference, in seconds: 100 µs to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];
/// Batch sizes: powers of two up to 1024 rows.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Ratios in tenths.
const RATIO_BUCKETS: &[f64] = &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (unless `record` is false: then every
/// metric handle is a no-op) and returns the handle `/metrics` renders.
pub fn install(record: bool) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), BATCH_BUCKETS)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(PADDING_RATIO.into()), RATIO_BUCKETS)
                })
                .expect("static bucket lists are non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed (an embedding program's): then
            // Convoy's metrics go there and `/metrics` shows what this recorder saw.
            if record {
                let _ = metrics::set_global_recorder(recorder);
                start_upkeep(handle.clone());
                start_gpu_sampler();
            }
            handle
        })
        .clone()
}

/// Drains the histograms' pending samples every few seconds. The exporter otherwise
/// drains them only when `/metrics` is rendered, so a server nobody scrapes grows its
/// memory with every request (measured in loadtests: ~120 bytes per request).
fn start_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("convoy-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: samples drain only on scrape");
    }
}

/// Samples every GPU's memory and utilisation through NVML every 2 s. Where NVML is
/// absent (no driver, a CPU host) the GPU metrics are simply absent: never an error.
fn start_gpu_sampler() {
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, "no NVML: GPU metrics are not exported");
            return;
        }
    };
    let count = nvml.device_count().unwrap_or(0);
    if count == 0 {
        return;
    }
    tracing::info!(
        gpus = count,
        "exporting GPU memory and utilisation from NVML"
    );
    let spawned = std::thread::Builder::new()
        .name("convoy-gpu-sampler".into())
        .spawn(move || loop {
            for i in 0..count {
                let Ok(device) = nvml.device_by_index(i) else {
                    continue;
                };
                let gpu = i.to_string();
                if let Ok(m) = device.memory_info() {
                    gauge!(GPU_MEMORY_USED, "gpu" => gpu.clone()).set(m.used as f64);
                    gauge!(GPU_MEMORY_TOTAL, "gpu" => gpu.clone()).set(m.total as f64);
                }
                if let Ok(u) = device.utilization_rates() {
                    gauge!(GPU_UTILIZATION, "gpu" => gpu).set(f64::from(u.gpu) / 100.0);
                }
            }
            std::thread::sleep(Duration::from_secs(2));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no GPU sampler thread: GPU metrics are not exported");
    }
}

/// The handles of one model (or of "unknown" for requests naming no served model).
pub struct ModelMetrics {
    /// One counter per outcome: "success" then every [`ErrorKind`] label.
    outcomes: Vec<(&'static str, Counter)>,
    pub in_flight: Gauge,
    pub request: Histogram,
    pub queue: Histogram,
    pub preprocess: Histogram,
    pub inference: Histogram,
    pub postprocess: Histogram,
    pub batch_rows: Histogram,
    /// Share of each batch's first input that is padding (text batches).
    pub padding: Histogram,
    pub queue_depth: Gauge,
    pub cancelled: Counter,
    pub expired: Counter,
    pub shed: Counter,
    /// The learned batch cost: fixed part and per unit of work (rows × row elements).
    pub cost_fixed: Gauge,
    pub cost_per_unit: Gauge,
    /// Share of requests that found a worker idle whom company followed.
    pub company: Gauge,
}

impl ModelMetrics {
    pub fn new(model: &str) -> Arc<ModelMetrics> {
        let m = model.to_string();
        let outcomes = std::iter::once("success")
            .chain(ErrorKind::ALL.iter().map(|k| k.label()))
            .map(|o| {
                (
                    o,
                    counter!(REQUESTS_TOTAL, "model" => m.clone(), "outcome" => o),
                )
            })
            .collect();
        Arc::new(ModelMetrics {
            outcomes,
            in_flight: gauge!(REQUESTS_IN_FLIGHT, "model" => m.clone()),
            request: histogram!(REQUEST_DURATION, "model" => m.clone()),
            queue: histogram!(QUEUE_DURATION, "model" => m.clone()),
            preprocess: histogram!(PREPROCESS_DURATION, "model" => m.clone()),
            inference: histogram!(INFERENCE_DURATION, "model" => m.clone()),
            postprocess: histogram!(POSTPROCESS_DURATION, "model" => m.clone()),
            batch_rows: histogram!(BATCH_SIZE, "model" => m.clone()),
            padding: histogram!(PADDING_RATIO, "model" => m.clone()),
            queue_depth: gauge!(QUEUE_DEPTH, "model" => m.clone()),
            cancelled: counter!(CANCELLED_TOTAL, "model" => m.clone()),
            expired: counter!(EXPIRED_TOTAL, "model" => m.clone()),
            shed: counter!(SHED_TOTAL, "model" => m.clone()),
            cost_fixed: gauge!(BATCH_COST_FIXED, "model" => m.clone()),
            cost_per_unit: gauge!(BATCH_COST_PER_UNIT, "model" => m.clone()),
            company: gauge!(BATCH_COMPANY_RATIO, "model" => m),
        })
    }

    /// Counts a finished request under `outcome` ("success" or an error kind).
    pub fn outcome(&self, outcome: &str) {
        if let Some((_, c)) = self.outcomes.iter().find(|(o, _)| *o == outcome) {
            c.increment(1);
        }
    }
}

/// Metrics for requests that name no served model (bounded: one label value).
pub fn unknown_model() -> &'static Arc<ModelMetrics> {
    static UNKNOWN: OnceLock<Arc<ModelMetrics>> = OnceLock::new();
    UNKNOWN.get_or_init(|| ModelMetrics::new("unknown"))
}

pub fn queue_capacity(model: &str, rows: usize) {
    gauge!(QUEUE_CAPACITY, "model" => model.to_string()).set(rows as f64);
}

pub fn model_loaded(model: &str, ready: bool, load: Duration, device: Option<&str>) {
    gauge!(MODEL_READY, "model" => model.to_string()).set(if ready { 1.0 } else { 0.0 });
    gauge!(MODEL_LOAD_DURATION, "model" => model.to_string()).set(load.as_secs_f64());
    if let Some(device) = device {
        gauge!(MODEL_DEVICE, "model" => model.to_string(), "device" => device.to_string()).set(1.0);
    }
}

/// Device time of one worker (instance), accumulated by the worker and turned into a
/// busy ratio once a second by the sampler thread, so an idle device reads 0, not the
/// ratio of its last batch.
pub struct BusyMeter {
    busy_ns: AtomicU64,
    gauge: Gauge,
    /// (when, busy_ns) at the last sample.
    last: Mutex<(Instant, u64)>,
}

impl BusyMeter {
    pub fn new(model: &str, instance: usize) -> Arc<BusyMeter> {
        let meter = Arc::new(BusyMeter {
            busy_ns: AtomicU64::new(0),
            gauge: gauge!(DEVICE_BUSY_RATIO, "model" => model.to_string(), "worker" => instance.to_string()),
            last: Mutex::new((Instant::now(), 0)),
        });
        meters()
            .lock()
            .expect("meters lock")
            .push(Arc::downgrade(&meter));
        start_sampler();
        meter
    }

    pub fn add(&self, busy: Duration) {
        self.busy_ns
            .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Sets the gauge to the busy share of wall time since the last sample.
    fn sample(&self, now: Instant) {
        let busy = self.busy_ns.load(Ordering::Relaxed);
        let mut last = self.last.lock().expect("meter lock");
        let wall = now.saturating_duration_since(last.0).as_nanos() as f64;
        if wall > 0.0 {
            let ratio = (busy.saturating_sub(last.1)) as f64 / wall;
            self.gauge.set(ratio.min(1.0));
        }
        *last = (now, busy);
    }
}

/// Live meters; a meter dies with its worker (an unloaded or replaced model).
fn meters() -> &'static Mutex<Vec<Weak<BusyMeter>>> {
    static METERS: OnceLock<Mutex<Vec<Weak<BusyMeter>>>> = OnceLock::new();
    METERS.get_or_init(Default::default)
}

/// Starts (once per process) the thread that samples every device's busy ratio once a
/// second. A thread, not a task: it must outlive any one tokio runtime (tests run many).
fn start_sampler() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("convoy-busy-sampler".into())
            .spawn(|| loop {
                std::thread::sleep(Duration::from_secs(1));
                let now = Instant::now();
                let all: Vec<Arc<BusyMeter>> = {
                    let mut meters = meters().lock().expect("meters lock");
                    meters.retain(|m| m.strong_count() > 0);
                    meters.iter().filter_map(Weak::upgrade).collect()
                };
                for m in all {
                    m.sample(now);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no busy-ratio sampler: convoy_device_busy_ratio stays at 0");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        for name in ALL {
            assert!(name.starts_with("convoy_"), "{name}");
            let unit_ok = [
                "_seconds",
                "_total",
                "_rows",
                "_ratio",
                "_ready",
                "_device",
                "_in_flight",
                "_bytes",
            ]
            .iter()
            .any(|s| name.ends_with(s));
            assert!(unit_ok, "{name} has no unit suffix");
        }
    }

    #[test]
    fn busy_ratio_is_busy_time_over_wall_time() {
        let m = BusyMeter::new("t", 0);
        let t0 = m.last.lock().unwrap().0;
        m.add(Duration::from_millis(250));
        m.sample(t0 + Duration::from_secs(1));
        let last = *m.last.lock().unwrap();
        assert_eq!(last.1, 250_000_000);
    }
}
