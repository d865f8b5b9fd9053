//! The CUDA execution provider: its options, and the CUDA libraries it needs, loaded
//! from the ONNX Runtime library's folder before the first CUDA session.

use std::path::Path;
use std::sync::OnceLock;

use ort::ep::ExecutionProviderDispatch;
#[cfg(feature = "cuda")]
use ort::ep::{self, ExecutionProvider};

use crate::backend::CudaOptions;

/// Whether the loaded library carries the CUDA execution provider (never, in a build
/// without the `cuda` feature).
pub(super) fn cuda_in_library() -> bool {
    #[cfg(feature = "cuda")]
    return ep::CUDA::is_available().unwrap_or(false);
    #[cfg(not(feature = "cuda"))]
    false
}

/// The CUDA execution provider on device `n` with the model's `[cuda]` options, failing
/// the session if it cannot register.
pub(super) fn cuda_provider(
    n: i32,
    options: &CudaOptions,
) -> Result<ExecutionProviderDispatch, ort::Error> {
    #[cfg(feature = "cuda")]
    {
        use crate::backend::{ArenaExtend, ConvAlgoSearch};
        let mut cuda = ep::CUDA::default().with_device_id(n);
        if let Some(limit) = options.gpu_mem_limit {
            cuda = cuda.with_memory_limit(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        if let Some(strategy) = options.arena_extend_strategy {
            cuda = cuda.with_arena_extend_strategy(match strategy {
                ArenaExtend::NextPowerOfTwo => ep::ArenaExtendStrategy::NextPowerOfTwo,
                ArenaExtend::SameAsRequested => ep::ArenaExtendStrategy::SameAsRequested,
            });
        }
        if let Some(search) = options.cudnn_conv_algo_search {
            cuda = cuda.with_conv_algorithm_search(match search {
                ConvAlgoSearch::Exhaustive => ep::cuda::ConvAlgorithmSearch::Exhaustive,
                ConvAlgoSearch::Heuristic => ep::cuda::ConvAlgorithmSearch::Heuristic,
                ConvAlgoSearch::Default => ep::cuda::ConvAlgorithmSearch::Default,
            });
        }
        if let Some(on) = options.cudnn_conv_use_max_workspace {
            cuda = cuda.with_conv_max_workspace(on);
        }
        if let Some(on) = options.use_tf32 {
            cuda = cuda.with_tf32(on);
        }
        Ok(cuda.build().error_on_failure())
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = options;
        Err(ort::Error::new(format!(
            "cuda:{n}: this convoy binary was built without the `cuda` feature"
        )))
    }
}

/// The CUDA 13 / cuDNN 9 libraries the CUDA execution provider loads by soname, in
/// dependency order: `true` = required, `false` = preloaded only when the folder has it.
/// `libonnxruntime_providers_cuda.so` has no RUNPATH, so without this they would have to
/// be on LD_LIBRARY_PATH or in the system's library path.
pub const CUDA_LIBRARIES: &[(&str, bool)] = &[
    ("libcudart.so.13", true),
    ("libcublasLt.so.13", true),
    ("libcublas.so.13", true),
    ("libcurand.so.10", true),
    ("libnvJitLink.so.13", false),
    ("libcufft.so.12", true),
    ("libnvrtc.so.13", true),
    ("libnvrtc-builtins.so.13.0", false),
    ("libcudnn.so.9", true),
    ("libcudnn_graph.so.9", true),
    ("libcudnn_ops.so.9", true),
    ("libcudnn_heuristic.so.9", true),
    ("libcudnn_cnn.so.9", true),
    ("libcudnn_adv.so.9", true),
    ("libcudnn_engines_precompiled.so.9", true),
    ("libcudnn_engines_runtime_compiled.so.9", true),
    ("libcudnn_engines_tensor_ir.so.9", false),
    ("libcudnn_ext.so.9", false),
];

/// The NVIDIA driver's library: always the host's, never a copy next to ONNX Runtime.
pub const CUDA_DRIVER: &str = "libcuda.so.1";

/// Loads (once per process, never unloaded) the CUDA libraries from `dir`, the folder of
/// the ONNX Runtime library (`deploy/setup.sh gpu` puts them there), falling back to the
/// system's search path for a library the folder does not hold; then the driver. Once a
/// library is loaded, the CUDA provider's own lookup by soname finds it. The error names
/// the first library that cannot be loaded.
pub(super) fn preload_cuda_libraries(dir: &Path) -> Result<(), String> {
    static PRELOADED: OnceLock<Result<(), String>> = OnceLock::new();
    PRELOADED
        .get_or_init(|| {
            let shown = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            for &(soname, required) in CUDA_LIBRARIES {
                let local = shown.join(soname);
                if local.is_file() {
                    load_library(local.as_os_str()).map_err(|e| {
                        format!("cannot load {soname} from {}: {e}", shown.display())
                    })?;
                } else if required {
                    load_library(std::ffi::OsStr::new(soname)).map_err(|e| {
                        format!(
                            "cannot load {soname} from {} (not there, nor in the system library path: {e}); `deploy/setup.sh gpu` puts the CUDA 13 and cuDNN 9 libraries next to libonnxruntime",
                            shown.display()
                        )
                    })?;
                }
            }
            load_library(std::ffi::OsStr::new(CUDA_DRIVER)).map_err(|e| {
                format!(
                    "cannot load {CUDA_DRIVER}, the NVIDIA driver (it comes from the host: R580 or newer for CUDA 13; in a container, the NVIDIA container toolkit): {e}"
                )
            })?;
            tracing::info!(folder = %shown.display(), "CUDA libraries loaded");
            Ok(())
        })
        .clone()
}

/// dlopen, kept loaded for the life of the process.
fn load_library(name: &std::ffi::OsStr) -> Result<(), String> {
    #[cfg(feature = "cuda")]
    return ort::util::preload_dylib(name).map_err(|e| {
        // libloading says "dlopen failed" and keeps dlerror()'s text as the source.
        match std::error::Error::source(&e) {
            Some(why) => why.to_string(),
            None => e.to_string(),
        }
    });
    #[cfg(not(feature = "cuda"))]
    Err(format!(
        "{}: this convoy binary was built without the `cuda` feature",
        name.to_string_lossy()
    ))
}
