//! Pipelines end to end on the shipped models (built by `deploy/setup.sh`): MiniLM
//! embeddings, EfficientNet-Lite0 and digits classification, against the reference
//! outputs computed in Python; bad inputs get clear 4xx answers.

mod common;

use std::path::Path;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

fn model_file(rel: &str) -> std::path::PathBuf {
    let p = shipped_models().join(rel);
    assert!(
        p.is_file(),
        "{} is missing: run `deploy/setup.sh` first",
        p.display()
    );
    p
}

fn reference_of(model: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(model_file(&format!("{model}/reference.json"))).unwrap(),
    )
    .unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

async fn embed(s: &TestServer, input: Value) -> (u16, Value) {
    s.post(
        "/v1/embeddings",
        &json!({"model": "minilm", "input": input}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minilm_embeddings_match_the_reference_alone_and_in_a_batch() {
    model_file("minilm/model.onnx");
    let s = TestServer::start(&shipped_models()).await;
    let r = reference_of("minilm");
    let sentences = r["sentences"].as_array().unwrap();
    let texts: Vec<&str> = sentences
        .iter()
        .map(|x| x["text"].as_str().unwrap())
        .collect();
    let (status, v) = embed(&s, json!(texts)).await;
    assert_eq!(status, 200, "{v}");
    let got: Vec<Vec<f32>> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| floats(&d["embedding"]))
        .collect();
    for (i, want) in sentences.iter().enumerate() {
        let first8 = floats(&want["first8"]);
        for (a, b) in got[i].iter().zip(&first8) {
            assert!(
                (a - b).abs() < 1e-4,
                "sentence {i}: {:?} vs {first8:?}",
                &got[i][..8]
            );
        }
    }
    let cos: f32 = got[0].iter().zip(&got[1]).map(|(a, b)| a * b).sum();
    assert!((cos - 0.133220).abs() < 1e-4, "{cos}");
    let tokens: usize = sentences
        .iter()
        .map(|x| x["ids"].as_array().map_or(0, Vec::len))
        .sum();
    if sentences.iter().all(|x| x.get("ids").is_some()) {
        assert_eq!(v["usage"]["prompt_tokens"], tokens);
    }
    // The same text alone and among 32 concurrent requests of other lengths.
    let (_, alone) = embed(&s, json!("Hello world")).await;
    let alone = floats(&alone["data"][0]["embedding"]);
    let mut tasks = Vec::new();
    for i in 0..32usize {
        let client = s.client.clone();
        let url = s.url("/v1/embeddings");
        let text = if i == 17 {
            "Hello world".to_string()
        } else {
            "word ".repeat(1 + i % 9)
        };
        tasks.push(tokio::spawn(async move {
            let v: Value = client
                .post(url)
                .json(&json!({"model": "minilm", "input": text}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let v = t.await.unwrap();
        if i == 17 {
            let batched = floats(&v["data"][0]["embedding"]);
            let diff = alone
                .iter()
                .zip(&batched)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-5, "batched embedding differs by {diff}");
        }
    }
    // v2 infer with a BYTES input on the same pipeline model.
    let (status, v2) = s
        .post("/v2/models/minilm/infer", &json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["Hello world"]}]}))
        .await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["outputs"][0]["shape"], json!([1, 384]));
    let via_v2 = floats(&v2["outputs"][0]["data"]);
    assert!(alone.iter().zip(&via_v2).all(|(a, b)| (a - b).abs() < 1e-6));
    // base64 encoding: little-endian f32.
    let (_, b64) = s
        .post(
            "/v1/embeddings",
            &json!({"model": "minilm", "input": "Hello world", "encoding_format": "base64"}),
        )
        .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, alone);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_inputs_that_cannot_be_embedded_get_clear_4xx() {
    model_file("minilm/model.onnx");
    let s = TestServer::start(&shipped_models()).await;
    let long = "word ".repeat(400);
    let huge = "word ".repeat(14_000); // 70,000 bytes: over the 64 KiB default
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"model": "minilm", "input": ""}),
            422,
            "input[0]: the text is empty",
        ),
        (
            json!({"model": "minilm", "input": []}),
            422,
            "expected at least one text",
        ),
        (
            json!({"model": "minilm", "input": 7}),
            422,
            "expected a string or an array of strings",
        ),
        (
            json!({"model": "minilm", "input": [[101, 102]]}),
            422,
            "token arrays are not supported",
        ),
        (
            json!({"model": "minilm", "input": long, "truncate": false}),
            422,
            "exceeds the model's maximum of 256",
        ),
        (
            json!({"model": "minilm", "input": ["hi", huge], "truncate": true}),
            413,
            "input[1]: text of 70000 bytes exceeds the limit of 65536 bytes",
        ),
        (
            json!({"model": "minilm", "input": "hi", "encoding_format": "int8"}),
            422,
            "encoding_format",
        ),
        (
            json!({"model": "minilm", "input": "hi", "dimensions": 12}),
            422,
            "dimensions",
        ),
        (
            json!({"model": "nope", "input": "hi"}),
            404,
            "model \"nope\" not found",
        ),
        (
            json!({"model": "mlp", "input": "hi"}),
            422,
            "not a text embedding model",
        ),
        (json!({"input": "hi"}), 400, "missing field `model`"),
    ];
    for (body, status, needle) in cases {
        let (got, v) = s.post("/v1/embeddings", &body).await;
        assert_eq!(got, status, "{body}: {v}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(needle),
            "{body}: {msg:?} should contain {needle:?}"
        );
    }
    // Truncation on: the long text is embedded.
    let (status, v) = s
        .post("/v1/embeddings", &json!({"model": "minilm", "input": long}))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], 256);
    // Bytes that are not UTF-8 (binary BYTES element on v2).
    let header = serde_json::to_vec(&json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]})).unwrap();
    let mut body = header.clone();
    body.extend_from_slice(&2u32.to_le_bytes());
    body.extend_from_slice(&[0xff, 0xfe]);
    let r = s
        .client
        .post(s.url("/v2/models/minilm/infer"))
        .header("inference-header-content-length", header.len())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("not valid UTF-8"),
        "{v}"
    );
    s.stop().await;
}

fn png_bytes(name: &str) -> Vec<u8> {
    std::fs::read(model_file(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn efficientnet_classifies_the_reference_photos_from_json_and_raw_bytes() {
    model_file("efficientnet_lite0/model.onnx");
    let s = TestServer::start(&shipped_models()).await;
    let r = reference_of("efficientnet_lite0");
    for (file, index, label) in [
        ("coffee.png", 967, "espresso"),
        ("chelsea.png", 282, "tiger cat"),
    ] {
        let want = &r["samples"][file]["top5"];
        let bytes = png_bytes(&format!("efficientnet_lite0/samples/{file}"));
        let raw = s
            .client
            .post(s.url("/v1/models/efficientnet_lite0/classify"))
            .header("content-type", "image/png")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), 200);
        assert!(raw.headers().contains_key("x-convoy-infer-us"));
        let raw: Value = raw.json().await.unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let (status, js) = s
            .post(
                "/v1/models/efficientnet_lite0/classify",
                &json!({"image": b64}),
            )
            .await;
        assert_eq!(status, 200, "{js}");
        for v in [&raw, &js] {
            let top = &v["predictions"][0][0];
            assert_eq!(top["index"], index, "{file}: {v}");
            assert_eq!(top["label"], label);
            let p = top["score"].as_f64().unwrap();
            let p_ref = want[0]["probability"].as_f64().unwrap();
            assert!((p - p_ref).abs() < 0.02, "{file}: {p} vs {p_ref}");
        }
        // v2 BYTES (base64 in JSON): probabilities for all 1000 classes.
        let (status, v2) = s
            .post("/v2/models/efficientnet_lite0/infer", &json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64]}]}))
            .await;
        assert_eq!(status, 200, "{v2}");
        let probs = floats(&v2["outputs"][0]["data"]);
        let best = probs
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(best, index);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digits_go_through_the_same_image_stage() {
    let s = TestServer::start(&shipped_models()).await;
    let r = reference_of("digits");
    for sample in r["samples"].as_array().unwrap() {
        let file = sample["png"].as_str().unwrap();
        let path = Path::new("digits").join(file.trim_start_matches("models/digits/"));
        let bytes = png_bytes(path.to_str().unwrap());
        let r = s
            .client
            .post(s.url("/v1/models/digits/classify"))
            .header("content-type", "image/png")
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v["predictions"][0][0]["index"], sample["png_label_predicted"],
            "{file}: {v}"
        );
        let want = floats(&sample["png_probabilities"]);
        let idx = sample["png_label_predicted"].as_u64().unwrap() as usize;
        let got = v["predictions"][0][0]["score"].as_f64().unwrap() as f32;
        assert!(
            (got - want[idx]).abs() < 1e-4,
            "{file}: {got} vs {}",
            want[idx]
        );
    }
    s.stop().await;
}

/// A PNG whose header claims `w`×`h` pixels (CRC fixed up), with no real pixel data.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // An IDAT with a few bytes, then IEND: enough for a decoder to read the header.
    for (kind, data) in [
        (&b"IDAT"[..], &[0x78u8, 0x9c, 0x03, 0x00][..]),
        (&b"IEND"[..], &[][..]),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_that_cannot_be_classified_get_clear_4xx() {
    let s = TestServer::start(&shipped_models()).await;
    let good = png_bytes("digits/samples/digit_3.png");
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"not an image at all".to_vec(), 422, "not a PNG or JPEG"),
        (good[..good.len() / 2].to_vec(), 422, "cannot decode"),
        (png_claiming(20_000, 20_000), 413, "20000×20000"),
        (png_claiming(0, 0), 422, "images[0]"),
        (vec![], 422, "images[0]"),
    ];
    for (body, status, needle) in cases {
        let r = s
            .client
            .post(s.url("/v1/models/digits/classify"))
            .header("content-type", "image/png")
            .body(body)
            .send()
            .await
            .unwrap();
        let got = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(got, status, "{needle}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }
    let json_cases: Vec<(Value, u16, &str)> = vec![
        (json!({"image": "%%%not base64"}), 422, "base64"),
        (json!({"images": []}), 422, "expected at least one image"),
        (json!({}), 422, "exactly one of"),
        (json!({"image": 3}), 400, "invalid request body"),
    ];
    for (body, status, needle) in json_cases {
        let (got, v) = s.post("/v1/models/digits/classify", &body).await;
        assert_eq!(got, status, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
    }
    // The server is still serving.
    let r = s
        .client
        .post(s.url("/v1/models/digits/classify"))
        .header("content-type", "image/png")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_client_works_unchanged() {
    model_file("minilm/model.onnx");
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `deploy/setup.sh`",
        python.display()
    );
    let s = TestServer::start(&shipped_models()).await;
    let out = tokio::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py"))
        .arg(&s.base)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "openai client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabular_model_takes_named_raw_features() {
    let s = TestServer::start(&shipped_models()).await;
    let r = reference_of("diabetes");
    let rows = r["rows"].clone();
    let want = floats(&r["predictions"]);
    let (status, v) = s
        .post("/v1/models/diabetes/predict", &json!({"instances": rows}))
        .await;
    assert_eq!(status, 200, "{v}");
    let got = floats(&v["predictions"]);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() < 1e-3 * w.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
    // One instance, keys in another order.
    let first = r["rows"][0].as_object().unwrap();
    let mut reversed = serde_json::Map::new();
    for (k, v) in first.iter().rev() {
        reversed.insert(k.clone(), v.clone());
    }
    let (_, v) = s
        .post(
            "/v1/models/diabetes/predict",
            &json!({"instance": reversed}),
        )
        .await;
    assert!((floats(&v["predictions"])[0] - want[0]).abs() < 1e-3 * want[0].abs());
    // v2: raw features as FP32 in column order.
    let features: Vec<&str> = r["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let raw: Vec<f64> = features
        .iter()
        .map(|f| first[*f].as_f64().unwrap())
        .collect();
    let (status, v2) = s
        .post("/v2/models/diabetes/infer", &json!({"inputs": [{"name": "features", "shape": [1, 10], "datatype": "FP32", "data": raw}]}))
        .await;
    assert_eq!(status, 200, "{v2}");
    assert!((floats(&v2["outputs"][0]["data"])[0] - want[0]).abs() < 1e-3 * want[0].abs());
    // Bad instances name the problem.
    let mut missing = first.clone();
    missing.remove("bmi");
    let (status, v) = s
        .post("/v1/models/diabetes/predict", &json!({"instance": missing}))
        .await;
    assert_eq!(status, 422);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("feature \"bmi\" is missing"),
        "{v}"
    );
    let (status, _) = s
        .post("/v1/models/diabetes/predict", &json!({"instances": []}))
        .await;
    assert_eq!(status, 422);
    let (status, v) = s
        .post("/v1/models/mlp/predict", &json!({"instance": first}))
        .await;
    assert_eq!(status, 422, "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_jpeg_is_refused_not_classified() {
    model_file("efficientnet_lite0/model.onnx");
    let png = png_bytes("efficientnet_lite0/samples/coffee.png");
    let mut jpeg = std::io::Cursor::new(Vec::new());
    image::load_from_memory(&png)
        .unwrap()
        .to_rgb8()
        .write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .unwrap();
    let jpeg = jpeg.into_inner();
    assert!(jpeg.len() > 4000, "{} bytes", jpeg.len());
    let s = TestServer::start(&shipped_models()).await;
    let classify = |body: Vec<u8>| {
        s.client
            .post(s.url("/v1/models/efficientnet_lite0/classify"))
            .header("content-type", "image/jpeg")
            .body(body)
            .send()
    };
    let whole = classify(jpeg.clone()).await.unwrap();
    assert_eq!(whole.status(), 200);
    let cut = classify(jpeg[..2000].to_vec()).await.unwrap();
    assert_eq!(cut.status(), 422);
    let v: Value = cut.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("cut short"), "{v}");
    // The same on v2, as binary BYTES.
    let b64 = base64::engine::general_purpose::STANDARD.encode(&jpeg[..2000]);
    let (status, v) = s
        .post(
            "/v2/models/efficientnet_lite0/infer",
            &json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64]}]}),
        )
        .await;
    assert_eq!(status, 422, "{v}");
    s.stop().await;
}

/// `convoy_requests_in_flight{model="inflight"}` from the exposition text.
fn minilm_in_flight(text: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix("convoy_requests_in_flight{model=\"inflight\"} "))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_move_the_in_flight_gauge_under_load() {
    // MiniLM under a name of its own: metrics are process-wide, and the other tests here
    // embed with "minilm" at the same time.
    model_file("minilm/model.onnx");
    let root = std::env::temp_dir().join(format!("convoy-test-{}-inflight", std::process::id()));
    let dir = root.join("inflight");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.onnx", "model.toml", "tokenizer.json"] {
        std::fs::copy(shipped_models().join("minilm").join(f), dir.join(f)).unwrap();
    }
    let s = TestServer::start(&root).await;
    let texts: Vec<String> = (0..64)
        .map(|i| format!("sentence number {i} about dynamic batching on a busy server"))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, stop) = (s.client.clone(), s.url("/v1/embeddings"), stop.clone());
            let body = json!({"model": "inflight", "input": texts});
            tokio::spawn(async move {
                let mut ok = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = client.post(&url).json(&body).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    ok += 1;
                }
                ok
            })
        })
        .collect();
    // Waits for the state (some requests counted in flight), bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut peak: f64 = 0.0;
    while peak < 1.0 && std::time::Instant::now() < deadline {
        peak = peak.max(minilm_in_flight(&s.scrape().await));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for t in load {
        answered += t.await.unwrap();
    }
    assert!(
        peak >= 1.0,
        "in flight stayed at 0 over {answered} requests"
    );
    assert_eq!(minilm_in_flight(&s.scrape().await), 0.0);
    s.stop().await;
}
