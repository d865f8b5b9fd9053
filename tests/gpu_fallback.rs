//! The GPU path on a machine without one, with the CPU ONNX Runtime library that CI has:
//! `--device cuda` fails fast naming the fix, `--device auto` serves on CPU and says so in
//! `GET /v2`, and `[cuda]` options are validated at startup (and ignored on CPU).
//! The onnxruntime-gpu library itself is tested in `gpu_library.rs`.

mod common;

use std::time::Duration;

use common::*;

const CUDA_TABLE: &str =
    "\n[cuda]\ngpu_mem_limit = 1073741824\narena_extend_strategy = \"same_as_requested\"\n\
                          cudnn_conv_algo_search = \"heuristic\"\nuse_tf32 = false\n";

#[test]
fn cuda_with_the_cpu_library_fails_fast_naming_the_gpu_setup() {
    let lib = ort_lib();
    let (code, err, took) = convoy_serve(&[
        "--device",
        "cuda",
        "--model-repository",
        shipped_models().to_str().unwrap(),
        "--ort-lib",
        lib.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let line = one_error_line(&err);
    assert!(
        line.contains("cuda:0")
            && line.contains("no CUDA execution provider")
            && line.contains(lib.to_str().unwrap())
            && line.contains("deploy/setup.sh gpu"),
        "{line}"
    );
    // Fast: it fails on the first model, before any other is loaded.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn bad_cuda_option_names_file_and_field() {
    let toml =
        format!("{}{CUDA_TABLE}", mlp_toml(8, 100, 64)).replace("\"heuristic\"", "\"fastest\"");
    let repo = mlp_repository("badcuda", &[("mlp", Some(&toml))]);
    let lib = ort_lib();
    // Validated before any session: the same error on --device cpu.
    let (code, err, _) = convoy_serve(&[
        "--device",
        "cpu",
        "--model-repository",
        repo.to_str().unwrap(),
        "--ort-lib",
        lib.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let line = one_error_line(&err);
    assert!(
        line.contains("mlp/model.toml")
            && line.contains("cuda.cudnn_conv_algo_search")
            && line.contains("fastest"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_with_the_cpu_library_serves_on_cpu_and_says_so() {
    // A model with [cuda] options: they apply only on CUDA, so on CPU it serves as usual.
    let toml = format!("{}{CUDA_TABLE}", mlp_toml(8, 100, 64));
    let repo = mlp_repository("autocpu", &[("mlp", Some(&toml))]);
    let mut config = convoy::config::ServeConfig::defaults();
    config.model_repository = repo;
    config.ort_lib = Some(ort_lib());
    config.device = "auto".parse().unwrap();
    let s = TestServer::start_with(config).await;
    let (status, meta) = s.get("/v2").await;
    assert_eq!(status, 200);
    assert_eq!(meta["device"]["requested"], "auto", "{meta}");
    assert_eq!(meta["device"]["cuda_available"], false, "{meta}");
    assert_eq!(meta["device"]["models"]["mlp"], "cpu", "{meta}");
    let (rows, want) = reference();
    let (status, v) = s.post("/v2/models/mlp/infer", &mlp_body(&rows[..4])).await;
    assert_eq!(status, 200, "{v}");
    for (got, want) in output_data(&v).iter().zip(&want[..4]) {
        assert!(
            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
    s.stop().await;
}
