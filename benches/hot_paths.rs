//! Criterion benches of the per-request and per-batch hot paths: the dispatch decision,
//! batch assembly, request decoding (JSON vs binary), and the pipelines' pre- and
//! post-processing. Whole-server figures live in `loadtests/`; these say where a
//! request's CPU time goes and catch a regression in one function.
//!
//!   cargo bench --bench hot_paths                 # full measurement
//!   cargo bench --bench hot_paths -- --quick      # a few seconds per bench
//!   cargo bench --bench hot_paths -- decode       # one group

use std::hint::black_box;
use std::io::Cursor;
use std::time::{Duration, Instant};

use convoy::batching::batch::{split, stack};
use convoy::batching::company::Company;
use convoy::batching::cost::BatchCost;
use convoy::batching::policy::{decide, Decision, Pending};
use convoy::http::decode::decode_inputs;
use convoy::http::dto::InferRequest;
use convoy::pipeline::image::{preprocess, ImageParams};
use convoy::pipeline::post::{mean_pool_normalized, softmax, top_k};
use convoy::repository::config::BatchingConfig;
use convoy::service::validate;
use convoy::tensor::{DataType, ServedSpec, Tensor, TensorData, TensorSpec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// A small deterministic generator (xorshift), so every run measures the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A fixed-window batching config (max 64, 500 µs window, preferred 64), the shape of
/// Triton's dynamic batcher: the policy's costliest path, which sorts and scans.
fn mlp_batching(priority_levels: u32) -> BatchingConfig {
    BatchingConfig {
        max_batch_size: 64,
        dynamic: true,
        max_queue_delay: Duration::from_micros(500),
        preferred_batch_sizes: vec![64],
        priority_levels,
        priority_aging: Duration::from_secs(1),
        ..BatchingConfig::default()
    }
}

/// `n` waiting requests of 1–4 rows, one in eight of another shape, arrived 1 µs apart;
/// with `priorities`, levels 1..=3 at random.
fn queue(n: usize, priorities: bool, t0: Instant) -> Vec<Pending> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            let rows = 1 + rng.below(4) as usize;
            let width = if rng.below(8) == 0 { 12 } else { 10 };
            Pending {
                rows,
                units: rows * width,
                shape: vec![width].into_boxed_slice(),
                enqueued: t0 + Duration::from_micros(i as u64),
                deadline: None,
                priority: if priorities {
                    1 + rng.below(3) as u32
                } else {
                    1
                },
            }
        })
        .collect()
}

fn bench_policy(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy_decide");
    let t0 = Instant::now();
    let cost = BatchCost::default();
    let company = Company::default();
    for n in [64, 1024] {
        for (label, levels) in [("fifo", 1), ("priorities", 3)] {
            let q = queue(n, levels > 1, t0);
            let cfg = mlp_batching(levels);
            // Before the window closes, the decision is a scan of the queue (and a sort
            // by level with priorities).
            let now = t0 + Duration::from_micros(n as u64 / 4);
            assert!(matches!(
                decide(&q, now, &cfg, &cost, Duration::ZERO, &company),
                Decision::Dispatch(_) | Decision::Wait(_)
            ));
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(label, n), &q, |b, q| {
                b.iter(|| {
                    decide(
                        black_box(q),
                        black_box(now),
                        &cfg,
                        &cost,
                        Duration::ZERO,
                        &company,
                    )
                })
            });
        }
    }
    g.finish();
}

fn bench_assembly(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_assembly");
    // 64 MLP requests of one FP32 row of 10.
    let rows: Vec<Vec<Tensor>> = (0..64)
        .map(|r| {
            vec![Tensor {
                shape: vec![1, 10],
                data: TensorData::F32((0..10).map(|i| (r * 10 + i) as f32).collect()),
            }]
        })
        .collect();
    let refs: Vec<&[Tensor]> = rows.iter().map(Vec::as_slice).collect();
    let ones = vec![1usize; 64];
    g.throughput(Throughput::Elements(64));
    g.bench_function("stack_split_fp32_64x10", |b| {
        b.iter(|| {
            let batch = stack(black_box(&refs), false).unwrap();
            split(batch, &ones).unwrap()
        })
    });
    // 32 text requests: token ids and masks of 8..128 tokens, padded to the longest.
    let mut rng = Rng(7);
    let texts: Vec<Vec<Tensor>> = (0..32)
        .map(|_| {
            let len = 8 + rng.below(121) as usize;
            let ids = Tensor {
                shape: vec![1, len],
                data: TensorData::I64((0..len as i64).map(|t| 1000 + t).collect()),
            };
            let mask = Tensor {
                shape: vec![1, len],
                data: TensorData::I64(vec![1; len]),
            };
            vec![ids, mask]
        })
        .collect();
    let refs: Vec<&[Tensor]> = texts.iter().map(Vec::as_slice).collect();
    let ones = vec![1usize; 32];
    g.throughput(Throughput::Elements(32));
    g.bench_function("stack_split_ragged_int64_32x8..128", |b| {
        b.iter(|| {
            let batch = stack(black_box(&refs), true).unwrap();
            split(batch, &ones).unwrap()
        })
    });
    g.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_mlp_64_rows");
    let specs = vec![ServedSpec::from(&TensorSpec {
        name: "input".into(),
        datatype: DataType::F32,
        dims: vec![10],
    })];
    let mut rng = Rng(42);
    let values: Vec<f32> = (0..640).map(|_| rng.unit() * 0.2 - 0.1).collect();
    let json = serde_json::to_vec(&serde_json::json!({
        "inputs": [{"name": "input", "shape": [64, 10], "datatype": "FP32", "data": values}]
    }))
    .unwrap();
    let header = serde_json::to_vec(&serde_json::json!({
        "inputs": [{"name": "input", "shape": [64, 10], "datatype": "FP32",
                    "parameters": {"binary_data_size": 640 * 4}}]
    }))
    .unwrap();
    let binary: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    // The door's and the core's work: parse the JSON part, decode, check against the
    // model.
    let run = |body: &[u8], binary: &[u8]| {
        let req: InferRequest = serde_json::from_slice(body).unwrap();
        let inputs = decode_inputs(req.inputs, binary).unwrap();
        let (mut valid, _) = validate::inputs("mlp", inputs, &specs, Some(64)).unwrap();
        valid.pop().unwrap().payload
    };
    assert_eq!(run(&json, &[]), run(&header, &binary));
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("json", |b| b.iter(|| run(black_box(&json), &[])));
    g.throughput(Throughput::Bytes((header.len() + binary.len()) as u64));
    g.bench_function("binary", |b| {
        b.iter(|| run(black_box(&header), black_box(&binary)))
    });
    g.finish();
}

fn bench_post(c: &mut Criterion) {
    let mut g = c.benchmark_group("post");
    // A MiniLM batch: 32 texts × 128 tokens × 384, each text with its own length.
    let (texts, tokens, dim) = (32, 128, 384);
    let mut rng = Rng(3);
    let hidden: Vec<f32> = (0..texts * tokens * dim)
        .map(|_| rng.unit() - 0.5)
        .collect();
    let masks: Vec<Vec<i64>> = (0..texts)
        .map(|_| {
            let len = 8 + rng.below(tokens as u64 - 7) as usize;
            (0..tokens).map(|t| i64::from(t < len)).collect()
        })
        .collect();
    g.throughput(Throughput::Elements(texts as u64));
    g.bench_function("mean_pool_normalized_32x128x384", |b| {
        b.iter(|| {
            masks
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let h = &hidden[i * tokens * dim..(i + 1) * tokens * dim];
                    mean_pool_normalized(black_box(h), dim, m)
                })
                .collect::<Vec<_>>()
        })
    });
    let logits: Vec<f32> = (0..1000).map(|_| rng.unit() * 20.0 - 10.0).collect();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("softmax_top5_1000_classes", |b| {
        b.iter(|| top_k(&softmax(black_box(&logits)), 5))
    });
    g.finish();
}

/// A 640×480 photo-like image (smooth gradients plus noise), encoded as `format`.
fn photo(format: image::ImageFormat) -> Vec<u8> {
    let mut rng = Rng(11);
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        let n = rng.below(24) as u32;
        image::Rgb([
            ((x * 255 / 640 + n) % 256) as u8,
            ((y * 255 / 480 + n) % 256) as u8,
            (((x + y) * 255 / 1120 + n) % 256) as u8,
        ])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

fn bench_image(c: &mut Criterion) {
    let mut g = c.benchmark_group("image_preprocess_640x480_to_224");
    g.sample_size(20);
    // EfficientNet-Lite0's pre-processing: short side 256, centre crop 224.
    let params = ImageParams {
        resize_short: Some(256),
        resize: None,
        crop: Some(224),
        channels: 3,
        mean: 127.0,
        scale: 128.0,
        max_bytes: 16 << 20,
        max_pixels: 40_000_000,
    };
    for (label, format) in [
        ("png", image::ImageFormat::Png),
        ("jpeg", image::ImageFormat::Jpeg),
    ] {
        let bytes = photo(format);
        assert_eq!(
            preprocess(&bytes, &params, "image").unwrap().len(),
            3 * 224 * 224
        );
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(label, |b| {
            b.iter(|| preprocess(black_box(&bytes), &params, "image").unwrap())
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_policy,
    bench_assembly,
    bench_decode,
    bench_post,
    bench_image
);
criterion_main!(benches);
