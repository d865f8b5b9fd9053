//! Inputs found by the fuzzers in `tests/fuzz`, replayed through the very harness the
//! fuzz targets run (`tests/fuzz/fuzz_targets/harness.rs`), as plain `cargo test`s.
//! Also replays every committed seed, so the harness keeps compiling and passing.
//!
//! A case that allocates without bound runs in a child process whose address space is
//! capped (`ulimit -v`), so a regression fails this test instead of the machine.

#[path = "fuzz/fuzz_targets/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fuzz_dir().join("seeds").join(target))
        .unwrap_or_else(|e| panic!("seeds/{target}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds for {target}");
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn tokenizer_stage() -> convoy::pipeline::text::TextStage {
    harness::text_stage(&fuzz_dir().join("fixtures/tokenizer.json"))
}

/// Runs the test named `name` again in a child process limited to `limit_mb` of address
/// space; in that child (marked by an environment variable) runs `body` instead.
fn in_bounded_child(name: &str, limit_mb: u64, body: impl FnOnce()) {
    const CHILD: &str = "CONVOY_FUZZ_REGRESSION_CHILD";
    if std::env::var_os(CHILD).is_some() {
        body();
        return;
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {}; exec \"$0\" --exact {name} --include-ignored --nocapture --test-threads=1",
            limit_mb * 1024
        ))
        .arg(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed within {limit_mb} MiB of address space ({}):\n{}\n{}",
        out.status,
        stdout.lines().rev().take(8).collect::<Vec<_>>().join("\n"),
        stderr.lines().rev().take(12).collect::<Vec<_>>().join("\n"),
    );
}

#[test]
fn committed_seeds_pass_their_harness() {
    for (path, bytes) in seeds("v2_json") {
        eprintln!("v2_json {}", path.display());
        harness::v2_json(&bytes);
    }
    for (path, bytes) in seeds("image") {
        eprintln!("image {}", path.display());
        harness::image(&bytes);
    }
    let stage = tokenizer_stage();
    for (path, bytes) in seeds("tokenizer") {
        eprintln!("tokenizer {}", path.display());
        harness::tokenizer(&stage, &bytes);
    }
}

#[test]
fn seeds_are_accepted_where_they_are_valid() {
    // The seeds are meant to reach the decoder's success path, not only its errors.
    use convoy::http::dto::InferRequest;
    for (path, bytes) in seeds("v2_json") {
        if path.ends_with("binary_header_only.json") {
            continue;
        }
        let req: InferRequest = serde_json::from_slice(&bytes).unwrap();
        let model = if req.inputs.len() == 1 { 0 } else { 1 };
        let (name, specs, max) = harness::model_specs().swap_remove(model);
        let r = harness::decode_for(name, req.inputs, &specs, max, &[]);
        assert!(r.is_ok(), "{}: {:?}", path.display(), r.err());
    }
    for p in harness::image_params() {
        for (path, bytes) in seeds("image") {
            let r = convoy::pipeline::image::preprocess(&bytes, &p, "image");
            assert!(r.is_ok(), "{}: {:?}", path.display(), r.err());
        }
    }
}

fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = fuzz_dir().join("regressions").join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Found by `image` (a libFuzzer timeout: 11 s and 1.9 GB for one 337-byte input).
/// A truncated JPEG whose header says 8×56070 pixels passes `max_pixels` (448,560 of
/// 1,048,576). `transform` then resizes the short side to 256 *before* cropping, to
/// 256×1,794,240 = 459 M pixels: a 16-byte-per-pixel vertical pass (230 MB) and a 1.4 GB
/// RGB buffer, for 224×224 values kept. Nothing bounds the resized size.
#[test]
fn image_extreme_aspect_jpegs_do_not_resize_without_bound() {
    in_bounded_child(
        "image_extreme_aspect_jpegs_do_not_resize_without_bound",
        1024,
        || {
            harness::image(&regression("image", "jpeg_8x56070_truncated.jpg"));
            // The long run found the same sideways: 8456×6 becomes 360,789×256.
            harness::image(&regression("image", "jpeg_8456x6_truncated.jpg"));
        },
    );
}

/// The same with a valid 3,963-byte PNG of 1×1,000,000 pixels (inside the fuzz limits;
/// production allows 40 M): the long side becomes 256 M pixels, a 4.1 GB float pass then
/// a 196 GB RGB buffer, whose failed allocation aborts the whole server process
/// ("memory allocation of … bytes failed"), not just the request.
/// A 1×40,000,000 PNG (78 KB, inside the production limits of 16 MiB and 40 M pixels)
/// saturates the height to u32::MAX: 3.3 TB.
#[test]
fn image_tall_png_does_not_abort_the_process() {
    in_bounded_child("image_tall_png_does_not_abort_the_process", 1024, || {
        harness::image(&regression("image", "png_1x1000000.png"))
    });
}
