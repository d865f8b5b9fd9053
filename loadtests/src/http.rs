//! The HTTP side shared by the closed and open loops: one pooled client, pre-encoded
//! bodies, and a single request function that classifies every outcome.
//!
//! Both loops must cost the server's 2-core host as little CPU as possible, so bodies are
//! read once into `Bytes` (cloning one is a reference-count bump) and response bodies are
//! drained but never parsed; only a handful of Convoy's timing headers are read.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Client, Url};
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;

use crate::body::rows_in_body;

/// Convoy's per-request timing headers, and the short names the reports use for them.
/// v2 infer answers carry queue/compute/batch rows; the task routes pre/queue/infer/post.
pub const TIMING_HEADERS: [(&str, &str); 6] = [
    ("x-convoy-pre-us", "pre_us"),
    ("x-convoy-queue-us", "queue_us"),
    ("x-convoy-compute-us", "compute_us"),
    ("x-convoy-infer-us", "infer_us"),
    ("x-convoy-post-us", "post_us"),
    ("x-convoy-batch-rows", "batch_rows"),
];

/// The timing headers of one response, in `TIMING_HEADERS` order.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerTiming(pub [Option<u64>; TIMING_HEADERS.len()]);

impl ServerTiming {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut t = [None; TIMING_HEADERS.len()];
        for (slot, (name, _)) in t.iter_mut().zip(TIMING_HEADERS) {
            *slot = headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse().ok());
        }
        Self(t)
    }

    /// Server-side time of the request: the sum of the stage headers present (µs), or
    /// `None` when the server sent none.
    pub fn server_us(&self) -> Option<u64> {
        let stages = TIMING_HEADERS
            .iter()
            .zip(self.0)
            .filter(|((_, short), _)| short.ends_with("_us"))
            .filter_map(|(_, v)| v);
        stages.fold(None, |acc, v| Some(acc.unwrap_or(0) + v))
    }
}

/// How one request ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `Ok` for a 2xx; otherwise the error kind (`http_429`, `timeout`, ...).
    pub result: Result<(), String>,
    /// Outcome key for per-status breakdowns: `http_200`, `http_429`, `timeout`, ...
    pub status: String,
    /// Timing headers (successful responses only).
    pub timing: ServerTiming,
}

impl Reply {
    fn failed(kind: String) -> Self {
        Self {
            result: Err(kind.clone()),
            status: kind,
            timing: ServerTiming::default(),
        }
    }
}

/// What every request of a run sends, and where.
pub struct Target {
    pub url: Url,
    /// One or more bodies, sent in turn (round robin over the whole run).
    pub bodies: Vec<Bytes>,
    pub content_type: HeaderValue,
    /// v2 binary tensor extension: the length of each body's JSON header, sent as
    /// `Inference-Header-Content-Length` (`None`: plain bodies).
    pub header_length: Option<HeaderValue>,
    pub rows_per_request: usize,
    next: AtomicUsize,
}

/// The v2 binary tensor extension's header: how many leading body bytes are JSON.
pub const INFERENCE_HEADER_LENGTH: &str = "inference-header-content-length";

impl Target {
    /// Reads the body files once; `rows_override` wins over what the bodies say (v2
    /// `shape[0]`, the number of texts of an embeddings body, 1 for a non-JSON body).
    /// Every body must carry the same number of rows, so rows/s stays exact.
    /// With `header_length`, every body is a v2 binary-extension body whose first that
    /// many bytes are its JSON header (rows are read from that header).
    pub fn load(
        url: &str,
        body_paths: &[PathBuf],
        rows_override: Option<usize>,
        content_type: &str,
        header_length: Option<usize>,
    ) -> Result<Self> {
        let url = Url::parse(url).with_context(|| format!("invalid --url {url}"))?;
        let content_type = HeaderValue::from_str(content_type)
            .with_context(|| format!("invalid --content-type {content_type}"))?;
        let json = content_type
            .to_str()
            .is_ok_and(|c| c.to_ascii_lowercase().contains("json"));
        if body_paths.is_empty() {
            bail!("--body: give at least one file");
        }
        let mut bodies = Vec::new();
        let mut rows = None;
        for path in body_paths {
            let body = std::fs::read(path)
                .with_context(|| format!("reading body file {}", path.display()))?;
            let here = match (rows_override, header_length) {
                (Some(r), _) => r,
                (None, Some(n)) => {
                    let header = body.get(..n).with_context(|| {
                        format!(
                            "body {}: shorter than its {n}-byte JSON header",
                            path.display()
                        )
                    })?;
                    rows_in_body(header)
                        .with_context(|| format!("JSON header of body {}", path.display()))?
                }
                (None, None) if json => {
                    rows_in_body(&body).with_context(|| format!("body {}", path.display()))?
                }
                (None, None) => 1,
            };
            match rows {
                Some(r) if r != here => bail!(
                    "bodies carry different row counts ({r} and {here} in {}); \
                     rows/s needs them equal",
                    path.display()
                ),
                _ => rows = Some(here),
            }
            bodies.push(Bytes::from(body));
        }
        Ok(Self {
            url,
            bodies,
            content_type,
            header_length: header_length.map(HeaderValue::from),
            rows_per_request: rows.unwrap_or(1),
            next: AtomicUsize::new(0),
        })
    }

    /// A POST to the target with its headers, body still to set.
    fn request(&self, client: &Client) -> reqwest::RequestBuilder {
        let r = client
            .post(self.url.clone())
            .header(CONTENT_TYPE, self.content_type.clone());
        match &self.header_length {
            Some(n) => r.header(INFERENCE_HEADER_LENGTH, n.clone()),
            None => r,
        }
    }

    /// The next body in turn.
    pub fn body(&self) -> Bytes {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.bodies.len();
        self.bodies[i].clone()
    }
}

/// A keep-alive client sized for `max_connections` concurrent requests.
///
/// Nagle is disabled because requests are small and latency-bound; the idle pool is as
/// large as the concurrency so a closed-loop task never has to reconnect.
pub fn build_client(max_connections: usize, timeout: Duration) -> Result<Client> {
    Client::builder()
        .pool_max_idle_per_host(max_connections)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")
}

/// Opens `n` keep-alive connections to the target's host (that many concurrent
/// `GET /v2/health/live`), so they are in the client's pool before the first measured
/// request. At most 64 are being opened at a time, so the server's accept backlog keeps
/// up, and each request holds its connection (its body unread) until all `n` have
/// answered: otherwise the pool would hand a finished one to the next request.
pub async fn open_connections(client: &Client, url: &Url, n: usize) -> Result<()> {
    let mut health = url.clone();
    health.set_path("/v2/health/live");
    health.set_query(None);
    let gate = Arc::new(Semaphore::new(64));
    let all_open = Arc::new(Barrier::new(n + 1));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (client, health, gate, all_open) = (
            client.clone(),
            health.clone(),
            Arc::clone(&gate),
            Arc::clone(&all_open),
        );
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await;
            let resp = client.get(health).send().await;
            drop(permit);
            all_open.wait().await;
            match resp {
                Ok(r) => r.bytes().await.map(|_| ()),
                Err(e) => Err(e),
            }
        });
    }
    all_open.wait().await;
    while let Some(r) = tasks.join_next().await {
        r.context("connection task panicked")?
            .with_context(|| format!("opening connections to {url}"))?;
    }
    Ok(())
}

/// Short, stable error kinds for the per-kind error counts.
fn classify(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else if err.is_body() || err.is_decode() {
        "body"
    } else if err.is_request() {
        "request"
    } else {
        "transport"
    };
    kind.to_string()
}

/// Sends the target's next body once.
///
/// The response body is always read to the end: a connection only goes back to the pool
/// once its response is consumed, and the server's serialisation work belongs in the
/// measured latency.
pub async fn send_one(client: &Client, target: &Target) -> Reply {
    let resp = match target.request(client).body(target.body()).send().await {
        Ok(resp) => resp,
        Err(e) => return Reply::failed(classify(&e)),
    };
    let status = resp.status();
    let timing = if status.is_success() {
        ServerTiming::from_headers(resp.headers())
    } else {
        ServerTiming::default()
    };
    if let Err(e) = resp.bytes().await {
        return Reply::failed(classify(&e));
    }
    let key = format!("http_{}", status.as_u16());
    Reply {
        result: if status.is_success() {
            Ok(())
        } else {
            Err(key.clone())
        },
        status: key,
        timing,
    }
}

/// One request per body before any measurement, so a wrong URL, body or model fails
/// loudly with the server's own message instead of as a wall of error counts.
pub async fn preflight(client: &Client, target: &Target) -> Result<()> {
    for (i, body) in target.bodies.iter().enumerate() {
        let resp = target
            .request(client)
            .body(body.clone())
            .send()
            .await
            .with_context(|| format!("preflight request to {}", target.url))?;
        let status = resp.status();
        let text = resp.text().await.context("reading preflight response")?;
        if !status.is_success() {
            bail!(
                "preflight request {i} to {} returned {status}: {text}",
                target.url
            );
        }
        let v: serde_json::Value =
            serde_json::from_str(&text).context("preflight response is not JSON")?;
        // v2 answers carry `outputs`, embeddings `data`, classify `predictions`/`results`:
        // any non-error JSON object will do, as long as it is not an error document.
        if v.get("error").is_some() || !v.is_object() {
            bail!("preflight response is not a result: {text}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_timing_headers_and_sums_the_stages() {
        let t = ServerTiming::from_headers(&headers(&[
            ("x-convoy-queue-us", "120"),
            ("x-convoy-compute-us", "30"),
            ("x-convoy-batch-rows", "64"),
        ]));
        assert_eq!(t.0, [None, Some(120), Some(30), None, None, Some(64)]);
        // batch rows is not a time and stays out of the sum.
        assert_eq!(t.server_us(), Some(150));
        assert_eq!(ServerTiming::default().server_us(), None);
    }

    #[test]
    fn ignores_malformed_timing_headers() {
        let t = ServerTiming::from_headers(&headers(&[("x-convoy-pre-us", "soon")]));
        assert_eq!(t, ServerTiming::default());
    }

    #[test]
    fn bodies_are_cycled_and_rows_must_agree() {
        let dir = std::env::temp_dir().join(format!("convoy-load-http-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, c) = (dir.join("a.json"), dir.join("b.json"), dir.join("c.json"));
        std::fs::write(&a, r#"{"input": ["x"], "model": "m"}"#).unwrap();
        std::fs::write(&b, r#"{"input": ["y"], "model": "m"}"#).unwrap();
        std::fs::write(&c, r#"{"input": ["y", "z"], "model": "m"}"#).unwrap();
        let url = "http://127.0.0.1:1/v1/embeddings";
        let t = Target::load(url, &[a.clone(), b.clone()], None, "application/json", None).unwrap();
        assert_eq!(t.rows_per_request, 1);
        let sent: Vec<Bytes> = (0..3).map(|_| t.body()).collect();
        assert_eq!(sent[0], sent[2]);
        assert_ne!(sent[0], sent[1]);
        assert!(Target::load(url, &[a.clone(), c], None, "application/json", None).is_err());
        // A non-JSON body is one row (one image) unless told otherwise.
        let t = Target::load(url, &[a], None, "image/png", None).unwrap();
        assert_eq!(t.rows_per_request, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
