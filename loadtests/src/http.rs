//! The HTTP side shared by the closed and open loops: one pooled client, one pre-encoded
//! body, and a single request function that classifies every failure.
//!
//! Both loops must cost the server's 2-core host as little CPU as possible, so the body is
//! read once into `Bytes` (cloning it is a reference-count bump) and response bodies are
//! drained but never parsed.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Client, Url};

use crate::body::rows_in_body;

/// What every request of a run sends, and where.
pub struct Target {
    pub url: Url,
    pub body: Bytes,
    pub rows_per_request: usize,
}

impl Target {
    /// Reads the body file once; `rows_override` wins over the body's own `shape[0]`.
    pub fn load(url: &str, body_path: &Path, rows_override: Option<usize>) -> Result<Self> {
        let url = Url::parse(url).with_context(|| format!("invalid --url {url}"))?;
        let body = std::fs::read(body_path)
            .with_context(|| format!("reading body file {}", body_path.display()))?;
        let rows_per_request = match rows_override {
            Some(rows) => rows,
            None => rows_in_body(&body)?,
        };
        Ok(Self {
            url,
            body: Bytes::from(body),
            rows_per_request,
        })
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

/// Sends the target's body once. `Err` carries the error kind (`http_429`, `timeout`, ...).
///
/// The response body is always read to the end: a connection only goes back to the pool
/// once its response is consumed, and the server's serialisation work belongs in the
/// measured latency.
pub async fn send_one(client: &Client, target: &Target) -> Result<(), String> {
    let resp = client
        .post(target.url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(target.body.clone())
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let status = resp.status();
    resp.bytes().await.map_err(|e| classify(&e))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("http_{}", status.as_u16()))
    }
}

/// One request before any measurement, so a wrong URL, body or model fails loudly with the
/// server's own message instead of as a wall of error counts.
pub async fn preflight(client: &Client, target: &Target) -> Result<()> {
    let resp = client
        .post(target.url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(target.body.clone())
        .send()
        .await
        .with_context(|| format!("preflight request to {}", target.url))?;
    let status = resp.status();
    let text = resp.text().await.context("reading preflight response")?;
    if !status.is_success() {
        bail!(
            "preflight request to {} returned {status}: {text}",
            target.url
        );
    }
    let v: serde_json::Value =
        serde_json::from_str(&text).context("preflight response is not JSON")?;
    if v.pointer("/outputs/0").is_none() {
        bail!("preflight response has no outputs: {text}");
    }
    Ok(())
}
