//! Triton's binary tensor extension: a structured JSON header (inputs with
//! `binary_data_size`, or inline `data`) followed by arbitrary tail bytes. The structure
//! keeps most cases past the JSON parser so the fuzzer spends its time on offsets,
//! sizes, shapes and element decoding.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

mod harness;

/// Input names: the models' (see `harness::model_specs`) with their datatype, and one
/// no model has.
const NAMES: [(&str, usize); 8] = [
    ("input", 0),
    ("mask", 1),
    ("ids", 2),
    ("flag", 3),
    ("u8", 4),
    ("i8", 5),
    ("f64", 6),
    ("nope", 0),
];
/// Datatype names: the served ones, and two the server must refuse.
const TYPES: [(&str, usize); 9] = [
    ("FP32", 4),
    ("INT64", 8),
    ("INT32", 4),
    ("BOOL", 1),
    ("UINT8", 1),
    ("INT8", 1),
    ("FP64", 8),
    ("FP16", 2),
    ("BYTES", 1),
];

#[derive(Arbitrary, Debug)]
enum Dim {
    Small(u8),
    Any(i64),
}

#[derive(Arbitrary, Debug)]
enum Size {
    /// What the shape and datatype need: the path a correct client takes.
    Exact,
    /// Off by a little from exact.
    Off(i8),
    Any(u64),
    Negative(i64),
    Float(f64),
    Text(String),
    /// No `binary_data_size`: inline JSON `data` of this many numbers.
    Inline(u8),
}

#[derive(Arbitrary, Debug)]
struct InputCase {
    name: u8,
    datatype: u8,
    shape: Vec<Dim>,
    size: Size,
}

#[derive(Arbitrary, Debug)]
struct Case {
    inputs: Vec<InputCase>,
    priority: Option<u64>,
    timeout: Option<i64>,
    /// Cut or zero-extend the tail to the sum of the declared sizes (what a correct
    /// client sends), so the decoder's success path is reached often.
    fit_tail: bool,
    tail: Vec<u8>,
}

/// Sum of the `binary_data_size`s in `header` that are integers, when at most 1 MiB.
fn declared_bytes(header: &Value) -> Option<usize> {
    let mut total = 0u64;
    for input in header["inputs"].as_array()? {
        if let Some(n) = input["parameters"]["binary_data_size"].as_u64() {
            total = total.checked_add(n)?;
        }
    }
    usize::try_from(total).ok().filter(|&t| t <= 1 << 20)
}

fn header(case: &Case) -> Value {
    let inputs: Vec<Value> = case
        .inputs
        .iter()
        .take(9)
        .map(|i| {
            let (name, own_type) = NAMES[i.name as usize % NAMES.len()];
            // Mostly the input's own datatype, so cases get past the type check.
            let (datatype, width) = match i.datatype {
                0..=191 => TYPES[own_type],
                d => TYPES[d as usize % TYPES.len()],
            };
            let shape: Vec<i64> = i
                .shape
                .iter()
                .take(5)
                .map(|d| match d {
                    Dim::Small(n) => i64::from(*n % 12),
                    Dim::Any(n) => *n,
                })
                .collect();
            let exact = shape.iter().try_fold(width as u64, |acc, &d| {
                acc.checked_mul(u64::try_from(d).ok()?)
            });
            let mut input = json!({
                "name": name,
                "shape": shape,
                "datatype": datatype,
            });
            let size = match &i.size {
                Size::Exact => exact.map(Value::from),
                Size::Off(d) => exact.map(|e| Value::from(e.wrapping_add_signed(i64::from(*d)))),
                Size::Any(n) => Some(Value::from(*n)),
                Size::Negative(n) => Some(Value::from(-n.saturating_abs())),
                Size::Float(f) => Some(json!(f)),
                Size::Text(s) => Some(Value::from(s.as_str())),
                Size::Inline(n) => {
                    input["data"] = (0..*n).map(|k| Value::from(k % 3)).collect();
                    None
                }
            };
            if let Some(size) = size {
                input["parameters"] = json!({ "binary_data_size": size });
            }
            input
        })
        .collect();
    let mut params = Map::new();
    if let Some(p) = case.priority {
        params.insert("priority".into(), p.into());
    }
    if let Some(t) = case.timeout {
        params.insert("timeout".into(), t.into());
    }
    json!({ "id": "fuzz", "parameters": params, "inputs": inputs })
}

fuzz_target!(|case: Case| {
    let header = header(&case);
    let json = serde_json::to_vec(&header).expect("a Value serialises");
    let mut tail = case.tail;
    if case.fit_tail {
        if let Some(n) = declared_bytes(&header) {
            tail.resize(n, 0);
        }
    }
    harness::v2_body(&json, &tail);
});
