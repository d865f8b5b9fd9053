//! The shape of the crate, enforced: the top-level modules form layers whose
//! dependencies point one way (down), so no module cycle can come back; and no source
//! file grows past the size a reader can hold.
//!
//! Reads `src/` as text: every `crate::<module>` a file names (in `use` or in a path) is
//! an edge from its own top-level module to that one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first: a module may use only modules listed before it.
const LAYERS: &[&str] = &[
    "tensor",
    "error",
    "backend",
    "metrics",
    "batching",
    "pipeline",
    "repository",
    "service",
    "config",
    "http",
];

/// Longest a file in `src/` may be, tests included.
const MAX_LINES: usize = 520;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None`: the crate root and the binary).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// Every `crate::<name>` in `text`, comments included (a doc link to an upper layer is
/// a dependency of the reader's model too).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let name: String = text[i + 7..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = edges.entry(module.clone()).or_default();
        // Names at the crate root that are not modules (exported macros) are no edge.
        for target in crate_refs(&text) {
            if target != module && modules.contains(&target) {
                entry.insert(target);
            }
        }
    }
    edges
}

#[test]
fn dependencies_point_down_the_layers() {
    let edges = graph();
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    for module in edges.keys() {
        assert!(
            rank(module).is_some(),
            "top-level module {module:?} is not in LAYERS: place it in its layer"
        );
    }
    let mut upward = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            match (rank(from), rank(to)) {
                (Some(a), Some(b)) if b < a => {}
                _ => upward.push(format!("{from} -> {to}")),
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that do not point down: {upward:?}"
    );
}

#[test]
fn the_checker_sees_imports_and_paths() {
    let text = "use crate::batching::Entry;\nfn f() { crate::tensor::x(); $crate::no::y }\n";
    let refs: Vec<String> = crate_refs(text).into_iter().collect();
    assert_eq!(refs, ["batching", "tensor"]);
}

#[test]
fn no_source_file_is_too_long() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    long.sort();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}
