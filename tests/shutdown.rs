//! SIGTERM during load, on the real binary: readiness and new requests turn 503, every
//! admitted request is answered, and the process exits 0.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_loses_no_admitted_request() {
    let repo = mlp_repository("sigterm", &[("mlp", Some(&mlp_toml(16, 20_000, 4096)))]);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_convoy"))
        .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
        .arg("--model-repository")
        .arg(&repo)
        .arg("--ort-lib")
        .arg(ort_lib())
        .args(["--shutdown-timeout-s", "10"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let t0 = Instant::now();
    while client
        .get(format!("{base}/v2/health/ready"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "server never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rows, want) = reference();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..16usize {
        let client = client.clone();
        let url = format!("{base}/v2/models/mlp/infer");
        let (stop, answered) = (stop.clone(), answered.clone());
        let body = mlp_body(&rows[c..c + 1]);
        let expect = want[c];
        clients.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                // A transport error means the server no longer reads requests: it never
                // admitted this one. Stop this client there.
                let Ok(r) = client.post(&url).json(&body).send().await else {
                    break;
                };
                match r.status().as_u16() {
                    200 => {
                        let v: serde_json::Value = r.json().await.unwrap();
                        assert!((output_data(&v)[0] - expect).abs() < 1e-3);
                        ok += 1;
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    503 => refused += 1,
                    other => panic!("client {c}: status {other} during shutdown"),
                }
            }
            (ok, refused)
        }));
    }
    // SIGTERM lands under load: once 100 requests were answered.
    wait_for("100 answers before SIGTERM", || {
        std::future::ready(answered.load(Ordering::Relaxed) >= 100)
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t_kill = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t_kill.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for c in clients {
        ok += c.await.unwrap().0;
    }
    assert!(exit.success(), "exit status {exit:?}");
    assert!(ok > 20, "only {ok} requests answered before the signal");
}
