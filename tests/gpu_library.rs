//! The onnxruntime-gpu library as `deploy/setup.sh gpu` lays it out in `.ort/gpu/`,
//! checked without a GPU: the folder's files and checksums, the CUDA execution provider
//! in the library, `--device cuda` failing fast without a driver (naming libcuda.so.1) or
//! without one of the CUDA libraries (naming it), and `--device auto` falling back to CPU.
//!
//! CI does not download the GPU wheels (~1.4 GB): without `.ort/gpu/` every test here
//! says SKIPPED on stderr and passes. Run `deploy/setup.sh gpu` to run them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

fn gpu_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".ort/gpu")
}

/// The GPU library, or `None` (with a SKIPPED line) when `deploy/setup.sh gpu` has not run.
fn gpu_lib(test: &str) -> Option<PathBuf> {
    let lib = gpu_dir().join("libonnxruntime.so");
    if lib.is_file() && gpu_dir().join(".sha256-ok").is_file() {
        Some(lib)
    } else {
        eprintln!(
            "SKIPPED {test}: {} is missing; run `deploy/setup.sh gpu` (downloads ~1.4 GB) to test the GPU library",
            lib.display()
        );
        None
    }
}

/// Whether this host has an NVIDIA driver (then "no driver" cannot be tested here).
fn driver_present() -> bool {
    Command::new("sh")
        .args([
            "-c",
            "ldconfig -p 2>/dev/null | grep -q 'libcuda\\.so\\.1 '",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn gpu_folder_holds_every_library_with_its_checksum() {
    let Some(_) = gpu_lib("gpu_folder_holds_every_library_with_its_checksum") else {
        return;
    };
    let dir = gpu_dir();
    // ONNX Runtime's three libraries in ONE folder, and every CUDA library Convoy preloads.
    for f in [
        "libonnxruntime.so.1.31.1",
        "libonnxruntime_providers_shared.so",
        "libonnxruntime_providers_cuda.so",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing from {}", dir.display());
    }
    for &(soname, required) in convoy::backend::ort::CUDA_LIBRARIES {
        if required {
            assert!(
                dir.join(soname).is_file(),
                "{soname} missing from {}",
                dir.display()
            );
        }
    }
    assert_eq!(
        std::fs::read_link(dir.join("libonnxruntime.so")).unwrap(),
        Path::new("libonnxruntime.so.1.31.1")
    );
    assert!(!dir.join(convoy::backend::ort::CUDA_DRIVER).exists());
    // Every unpacked file against the manifest written at unpack time.
    let out = Command::new("sha256sum")
        .args(["--quiet", "--strict", "-c", "MANIFEST.sha256"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sha256sum -c MANIFEST.sha256 in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.sha256")).unwrap();
    let libs = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("lib"))
        .count();
    assert_eq!(manifest.lines().count(), libs, "{manifest}");
    // The wheels they came from: exactly the sha256s deploy/setup.sh pins.
    let setup =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/setup.sh"))
            .unwrap();
    let stamp = std::fs::read_to_string(dir.join(".sha256-ok")).unwrap();
    assert_eq!(stamp.lines().count(), 8, "{stamp}");
    for line in stamp.lines() {
        let sha = line.split_whitespace().next().unwrap();
        assert!(
            sha.len() == 64 && setup.contains(sha),
            "{line}: not pinned in deploy/setup.sh"
        );
    }
}

#[test]
fn gpu_library_carries_the_cuda_provider() {
    let Some(lib) = gpu_lib("gpu_library_carries_the_cuda_provider") else {
        return;
    };
    let runtime = convoy::backend::ort::Runtime::init(&lib).expect("the GPU library loads");
    assert!(runtime.cuda_available, "ep::CUDA::is_available() is false");
}

#[test]
fn cuda_without_a_driver_fails_fast_naming_libcuda() {
    let Some(lib) = gpu_lib("cuda_without_a_driver_fails_fast_naming_libcuda") else {
        return;
    };
    if driver_present() {
        eprintln!("SKIPPED cuda_without_a_driver_fails_fast_naming_libcuda: this host has an NVIDIA driver");
        return;
    }
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
        line.contains("cuda:0") && line.contains("cannot load libcuda.so.1"),
        "{line}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn cuda_without_one_of_its_libraries_names_it() {
    let Some(lib) = gpu_lib("cuda_without_one_of_its_libraries_names_it") else {
        return;
    };
    // The GPU folder without libcublasLt.so.13 (links to the rest).
    let dir = std::env::temp_dir().join(format!("convoy-test-{}-partial-gpu", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(gpu_dir()).unwrap() {
        let name = entry.unwrap().file_name();
        if name != "libcublasLt.so.13" {
            std::os::unix::fs::symlink(gpu_dir().join(&name), dir.join(&name)).unwrap();
        }
    }
    let partial = dir.join(lib.file_name().unwrap());
    let (code, err, _) = convoy_serve(&[
        "--device",
        "cuda",
        "--model-repository",
        shipped_models().to_str().unwrap(),
        "--ort-lib",
        partial.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{err}");
    let line = one_error_line(&err);
    if driver_present() && line.contains("libcuda") {
        return; // unreachable in practice: the CUDA libraries are checked first
    }
    assert!(
        line.contains("cannot load libcublasLt.so.13 from")
            && line.contains(dir.to_str().unwrap())
            && line.contains("deploy/setup.sh gpu"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_with_the_gpu_library_and_no_driver_falls_back_to_cpu() {
    let Some(lib) = gpu_lib("auto_with_the_gpu_library_and_no_driver_falls_back_to_cpu") else {
        return;
    };
    let mut config = convoy::config::ServeConfig::defaults();
    config.model_repository = mlp_repository("autogpu", &[("mlp", None)]);
    config.ort_lib = Some(lib);
    config.device = "auto".parse().unwrap();
    let s = TestServer::start_with(config).await;
    let (status, meta) = s.get("/v2").await;
    assert_eq!(status, 200);
    assert_eq!(meta["device"]["requested"], "auto", "{meta}");
    assert_eq!(meta["device"]["cuda_available"], true, "{meta}");
    let want = if driver_present() { "cuda:0" } else { "cpu" };
    assert_eq!(meta["device"]["models"]["mlp"], want, "{meta}");
    // The GPU library's CPU path computes the same as the CPU library's.
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
