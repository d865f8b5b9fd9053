//! A real Convoy server on 127.0.0.1:0 for integration tests, with its own model
//! repositories made from the shipped models.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use convoy::config::ServeConfig;
use serde_json::{json, Value};

pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The ONNX Runtime library `deploy/setup.sh` provides; tests fail loudly without it.
pub fn ort_lib() -> PathBuf {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ort/cpu/libonnxruntime.so");
    assert!(
        lib.is_file(),
        "{} is missing: run `deploy/setup.sh` first (the README's test command does)",
        lib.display()
    );
    lib
}

pub fn shipped_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// A scratch repository holding the shipped MLP under `name`, with `model.toml`
/// rewritten by `toml` (the shipped file when `None`).
pub fn mlp_repository(tag: &str, models: &[(&str, Option<&str>)]) -> PathBuf {
    let root = std::env::temp_dir().join(format!("convoy-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (name, toml) in models {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            shipped_models().join("mlp/model.onnx"),
            dir.join("model.onnx"),
        )
        .unwrap();
        let text = match toml {
            Some(t) => t.to_string(),
            None => std::fs::read_to_string(shipped_models().join("mlp/model.toml")).unwrap(),
        };
        std::fs::write(dir.join("model.toml"), text).unwrap();
    }
    root
}

/// An MLP model.toml with the given batching knobs.
pub fn mlp_toml(max_batch: usize, delay_us: u64, queue: usize) -> String {
    format!(
        "max_batch_size = {max_batch}\n[dynamic_batching]\nmax_queue_delay_us = {delay_us}\nmax_queue_size = {queue}\n\
         [[input]]\nname = \"input\"\ndatatype = \"FP32\"\ndims = [10]\n\
         [[output]]\nname = \"output\"\ndatatype = \"FP32\"\ndims = [1]\n"
    )
}

impl TestServer {
    pub async fn start(repo: &Path) -> TestServer {
        let mut config = ServeConfig::defaults();
        config.model_repository = repo.to_path_buf();
        config.ort_lib = Some(ort_lib());
        config.device = "cpu".parse().unwrap();
        TestServer::start_with(config).await
    }

    pub async fn start_with(config: ServeConfig) -> TestServer {
        let state = convoy::prepare(&config).expect("server prepares");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(convoy::serve(
            state,
            listener,
            async move {
                let _ = rx.await;
            },
            Duration::from_secs(5),
        ));
        TestServer {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self.post_raw(path, serde_json::to_vec(body).unwrap()).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Rows waiting in `model`'s queue now (its statistics' `convoy.queued_rows`).
    pub async fn queued_rows(&self, model: &str) -> u64 {
        let (_, v) = self.get(&format!("/v2/models/{model}/stats")).await;
        v["model_stats"][0]["convoy"]["queued_rows"]
            .as_u64()
            .unwrap_or(0)
    }

    /// The text of `GET /metrics`.
    pub async fn scrape(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the server and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// The reference rows and outputs `models/mlp/train.py` computed with onnxruntime.
pub fn reference() -> (Vec<Vec<f32>>, Vec<f32>) {
    let text = std::fs::read_to_string(shipped_models().join("mlp/reference.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let rows = v["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    let out = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_f64().unwrap() as f32)
        .collect();
    (rows, out)
}

/// A v2 infer body for the MLP with these rows.
pub fn mlp_body(rows: &[Vec<f32>]) -> Value {
    let data: Vec<f32> = rows.iter().flatten().copied().collect();
    json!({"inputs": [{"name": "input", "shape": [rows.len(), 10], "datatype": "FP32", "data": data}]})
}

pub fn output_data(v: &Value) -> Vec<f32> {
    v["outputs"][0]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no output data in {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Runs the real `convoy serve` binary on 127.0.0.1:0 with `args`, in an environment
/// cleared of what could pick a library or device for it; returns (exit code, stderr,
/// how long it ran). For startup failures: the server never gets to serve.
pub fn convoy_serve(args: &[&str]) -> (i32, String, Duration) {
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_convoy"))
        .arg("serve")
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("CONVOY_DEVICE")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

/// The one `convoy: error:` line of a failed startup (asserting there is exactly one,
/// and no panic).
pub fn one_error_line(stderr: &str) -> String {
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("convoy: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

/// Waits until `check` holds, polling; panics naming `what` after 30 s. A wait on a state,
/// where a sleep would guess how long the state takes on a loaded machine.
pub async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
