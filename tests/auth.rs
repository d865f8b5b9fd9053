//! Bearer-token auth on a real server: 401 without a key, 403 with a wrong one, open
//! health and metrics unless asked, and CORS only for configured origins.

mod common;

use common::*;
use convoy::config::ServeConfig;

async fn server(keys: &[&str], auth_health: bool) -> TestServer {
    let mut config = ServeConfig::defaults();
    config.model_repository = shipped_models();
    config.ort_lib = Some(ort_lib());
    config.device = "cpu".parse().unwrap();
    config.api_keys = keys.iter().map(|k| k.to_string()).collect();
    config.auth_health = auth_health;
    config.cors_origins = vec!["https://app.example".into()];
    TestServer::start_with(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_guard_inference_and_admin_routes() {
    let s = server(&["k-one", "k-two"], false).await;
    let (rows, _) = reference();
    let url = s.url("/v2/models/mlp/infer");
    let body = mlp_body(&rows[..1]);
    let r = s.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = s
        .client
        .post(&url)
        .bearer_auth("k-three")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .client
        .post(&url)
        .bearer_auth("k-two")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .post(s.url("/v2/repository/index"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(s.get("/v2/health/ready").await.0, 200);
    assert_eq!(
        s.client
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // CORS: the configured origin is allowed, others get no CORS headers.
    let r = s
        .client
        .get(s.url("/v2/health/live"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let r = s
        .client
        .get(s.url("/v2/health/live"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_can_require_the_key_too() {
    let s = server(&["k-one"], true).await;
    assert_eq!(s.get("/v2/health/ready").await.0, 401);
    let r = s
        .client
        .get(s.url("/v2/health/ready"))
        .bearer_auth("k-one")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
