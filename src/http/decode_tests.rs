use super::*;
use crate::error::ErrorKind;
use serde_json::json;

fn inputs(v: Vec<Value>, binary: &[u8]) -> Result<Vec<Input>> {
    let list = v
        .into_iter()
        .map(|i| serde_json::from_value(i).unwrap())
        .collect();
    decode_inputs(list, binary)
}

fn refused(v: Value) -> (ErrorKind, String) {
    let e = inputs(vec![v], &[]).unwrap_err();
    (e.kind, e.message)
}

#[test]
fn flat_and_nested_data_agree() {
    let flat = json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4.5]});
    let nested =
        json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]});
    let a = inputs(vec![flat], &[]).unwrap();
    let b = inputs(vec![nested], &[]).unwrap();
    assert_eq!(a[0].payload, b[0].payload);
    assert_eq!(
        a[0].payload,
        Payload::Numeric(TensorData::F32(vec![1.0, 2.0, 3.0, 4.5]))
    );
    assert_eq!(a[0].shape, vec![2, 2]);
}

#[test]
fn nesting_must_follow_the_shape() {
    let deeper = json!({"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [[[1, 2]]]});
    let (kind, msg) = refused(deeper);
    assert_eq!(kind, ErrorKind::Unprocessable);
    assert!(
        msg.contains("inputs[0].data: nested arrays must follow"),
        "{msg}"
    );
    let ragged = json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3]]});
    assert!(refused(ragged)
        .1
        .contains("found 1 values where the shape has 2"));
    let mixed = json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, [2, 3], 4]});
    assert_eq!(refused(mixed).0, ErrorKind::Unprocessable);
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    let deep = json!({"name": "x", "shape": [1, 2], "datatype": "FP32", "data": deep});
    assert_eq!(refused(deep).0, ErrorKind::Unprocessable);
}

#[test]
fn data_and_binary_data_size_are_exclusive() {
    let both = json!({"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [1],
        "parameters": {"binary_data_size": 4}});
    let e = inputs(vec![both], &1f32.to_le_bytes()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert!(e.message.contains("not both"), "{e}");
    let neither = json!({"name": "x", "shape": [1, 1], "datatype": "FP32"});
    assert_eq!(refused(neither).0, ErrorKind::BadRequest);
}

#[test]
fn each_value_rule_names_the_field() {
    let cases = [
        (
            json!({"name": "m", "shape": [1, 1], "datatype": "INT64", "data": [1.5]}),
            "inputs[0].data[0]: expected a 64-bit integer",
        ),
        (
            json!({"name": "m", "shape": [1, 1], "datatype": "UINT8", "data": [256]}),
            "an integer in 0..=255",
        ),
        (
            json!({"name": "m", "shape": [1, 1], "datatype": "FP32", "data": [1e308]}),
            "within the FP32 range",
        ),
        (
            json!({"name": "m", "shape": [1, 1], "datatype": "FP16", "data": [1]}),
            "inputs[0].datatype: expected one of",
        ),
        (
            json!({"name": "m", "shape": [1, -1], "datatype": "FP32", "data": [1]}),
            "must be non-negative",
        ),
        (
            json!({"name": "m", "shape": [1, 2], "datatype": "FP32", "data": [1]}),
            "needs 2 values, got 1",
        ),
        (
            json!({"name": "m", "shape": [1], "datatype": "BYTES", "data": [3]}),
            "expected a string for BYTES",
        ),
    ];
    for (input, want) in cases {
        let (kind, msg) = refused(input);
        assert_eq!(kind, ErrorKind::Unprocessable, "{msg}");
        assert!(msg.contains(want), "{msg} lacks {want:?}");
    }
}

#[test]
fn binary_data_is_read_in_order_and_bounds_checked() {
    let mut bytes = Vec::new();
    for f in [1.0f32, 2.0] {
        bytes.extend_from_slice(&f.to_le_bytes());
    }
    bytes.extend_from_slice(&7i64.to_le_bytes());
    let list = || {
        vec![
            json!({"name": "x", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}),
            json!({"name": "m", "shape": [1, 1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}),
        ]
    };
    let ok = inputs(list(), &bytes).unwrap();
    assert_eq!(ok[1].payload, Payload::Numeric(TensorData::I64(vec![7])));
    assert_eq!(
        inputs(list(), &bytes[..12]).unwrap_err().kind,
        ErrorKind::BadRequest
    );
    let mut extra = bytes.clone();
    extra.push(0);
    assert_eq!(
        inputs(list(), &extra).unwrap_err().kind,
        ErrorKind::BadRequest
    );
}

#[test]
fn binary_bytes_elements_are_length_prefixed() {
    let mut raw = Vec::new();
    for s in ["ab", "c"] {
        raw.extend_from_slice(&(s.len() as u32).to_le_bytes());
        raw.extend_from_slice(s.as_bytes());
    }
    let text = |n: usize, size: usize| json!({"name": "t", "shape": [n], "datatype": "BYTES", "parameters": {"binary_data_size": size}});
    let ok = inputs(vec![text(2, raw.len())], &raw).unwrap();
    assert_eq!(
        ok[0].payload,
        Payload::Bytes(vec![bytes::Bytes::from("ab"), bytes::Bytes::from("c")])
    );
    let e = inputs(vec![text(3, raw.len())], &raw).unwrap_err();
    assert!(e.message.contains("needs 3 BYTES elements"), "{e}");
    let e = inputs(vec![text(2, raw.len() - 1)], &raw[..raw.len() - 1]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
}

#[test]
fn output_flags_are_booleans() {
    let body: InferRequest = serde_json::from_value(json!({
        "inputs": [], "parameters": {"binary_data_output": true},
        "outputs": [{"name": "a"}, {"name": "b", "parameters": {"binary_data": false}}]
    }))
    .unwrap();
    let r = request(body, &[]).unwrap();
    assert!(r.binary_default);
    let outputs = r.outputs.unwrap();
    assert_eq!((outputs[0].binary, outputs[1].binary), (None, Some(false)));
    let body: InferRequest = serde_json::from_value(json!({
        "inputs": [], "parameters": {"binary_data_output": "yes"}
    }))
    .unwrap();
    assert_eq!(request(body, &[]).unwrap_err().kind, ErrorKind::BadRequest);
}

#[test]
fn schedule_reads_timeout_and_priority() {
    let t0 = Instant::now();
    let params = |v: Value| v.as_object().cloned();
    let s = schedule(None, None, t0, "r".into()).unwrap();
    assert_eq!((s.timeout, s.priority), (None, None));
    let p = params(json!({"timeout": 2500, "priority": 1}));
    let s = schedule(p.as_ref(), Some("9"), t0, "r".into()).unwrap();
    assert_eq!(
        (s.timeout, s.priority),
        (Some(Duration::from_micros(2500)), Some(1))
    );
    let s = schedule(None, Some("9"), t0, "r".into()).unwrap();
    assert_eq!(s.timeout, Some(Duration::from_millis(9)));
    let p = params(json!({"timeout": "soon"}));
    let e = schedule(p.as_ref(), None, t0, "r".into()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    let e = schedule(None, Some("-1"), t0, "r".into()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    let p = params(json!({"priority": "high"}));
    let e = schedule(p.as_ref(), None, t0, "r".into()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unprocessable);
}
