//! Turns a request's input tensors into validated, typed tensors for one model. Pure:
//! every rule names the field, what was expected and what was given.
//!
//! Data comes either as JSON (`data`, flat or nested row-major) or, with Triton's binary
//! tensor extension, as raw little-endian bytes after the JSON (`binary_data_size`).

use serde_json::{Map, Value};

use super::dto::InferInputRequest;
use crate::batching::ShapeKey;
use crate::error::ApiError;
use crate::repository::TensorSpec;
use crate::tensor::{element_count, DataType, Tensor, TensorData};

/// Deepest nesting of `data` arrays accepted (a tensor's rank is far below).
const MAX_NESTING: usize = 32;

/// A request's inputs, checked against the model and ordered as the model declares them.
#[derive(Debug, PartialEq)]
pub struct ValidInputs {
    pub tensors: Vec<Tensor>,
    pub rows: usize,
    pub shape_key: ShapeKey,
}

fn unprocessable(msg: String) -> ApiError {
    ApiError::Unprocessable(msg)
}

/// Validates `inputs` for `model` whose inputs are `specs`; `binary` is the part of the
/// body after the JSON (empty without the binary extension).
pub fn decode_inputs(
    model: &str,
    inputs: Vec<InferInputRequest>,
    specs: &[TensorSpec],
    max_batch_size: usize,
    binary: &[u8],
) -> Result<ValidInputs, ApiError> {
    let mut slots: Vec<Option<Tensor>> = specs.iter().map(|_| None).collect();
    let mut offset = 0usize;
    let mut rows: Option<(usize, String)> = None;
    for (i, input) in inputs.into_iter().enumerate() {
        let field = format!("inputs[{i}]");
        let Some(k) = specs.iter().position(|s| s.name == input.name) else {
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            return Err(unprocessable(format!(
                "{field}.name: model {model:?} has no input {:?} (its inputs: {})",
                input.name,
                names.join(", ")
            )));
        };
        if slots[k].is_some() {
            return Err(unprocessable(format!(
                "{field}.name: input {:?} is given twice",
                input.name
            )));
        }
        let spec = &specs[k];
        let datatype = DataType::parse(&input.datatype);
        if datatype != Some(spec.datatype) {
            return Err(unprocessable(format!(
                "{field}.datatype: input {:?} expects {}, got {:?}",
                spec.name, spec.datatype, input.datatype
            )));
        }
        let shape = check_shape(&field, spec, &input.shape, max_batch_size)?;
        let n = shape[0];
        match &rows {
            Some((r, first)) if *r != n => {
                return Err(unprocessable(format!(
                    "{field}.shape: every input must have the same batch size; {first:?} has {r} rows, {:?} has {n}",
                    spec.name
                )))
            }
            None => rows = Some((n, spec.name.clone())),
            _ => {}
        }
        let count = element_count(&shape).ok_or_else(|| {
            unprocessable(format!("{field}.shape: {shape:?} has too many elements"))
        })?;
        let data = match binary_size(&field, input.parameters.as_ref())? {
            Some(size) => {
                let end = offset.checked_add(size).filter(|&e| e <= binary.len()).ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{field}.parameters.binary_data_size: {size} bytes at offset {offset} run past the {} bytes of binary data",
                        binary.len()
                    ))
                })?;
                let bytes = &binary[offset..end];
                offset = end;
                from_bytes(&field, spec.datatype, bytes, count)?
            }
            None => {
                let value = input.data.ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{field}.data: missing (give `data`, or `parameters.binary_data_size` with binary data)"
                    ))
                })?;
                from_json(&field, spec.datatype, &value, count)?
            }
        };
        slots[k] = Some(Tensor { shape, data });
    }
    if offset != binary.len() {
        return Err(ApiError::BadRequest(format!(
            "binary data: the inputs' binary_data_size add up to {offset} bytes, the body carries {}",
            binary.len()
        )));
    }
    let mut tensors = Vec::with_capacity(specs.len());
    for (spec, slot) in specs.iter().zip(slots) {
        tensors.push(slot.ok_or_else(|| {
            unprocessable(format!(
                "inputs: model {model:?} needs input {:?} ({} {}), which the request lacks",
                spec.name,
                spec.datatype,
                dims_text(&spec.dims)
            ))
        })?);
    }
    let shape_key: ShapeKey = tensors
        .iter()
        .flat_map(|t| t.shape[1..].iter().copied())
        .collect();
    Ok(ValidInputs {
        rows: tensors[0].shape[0],
        tensors,
        shape_key,
    })
}

fn dims_text(dims: &[i64]) -> String {
    let all: Vec<String> = std::iter::once("-1".to_string())
        .chain(dims.iter().map(|d| d.to_string()))
        .collect();
    format!("[{}]", all.join(", "))
}

/// Checks a shape against the spec (batch dimension first) and returns it unsigned.
fn check_shape(
    field: &str,
    spec: &TensorSpec,
    shape: &[i64],
    max_batch_size: usize,
) -> Result<Vec<usize>, ApiError> {
    if shape.len() != spec.dims.len() + 1 {
        return Err(unprocessable(format!(
            "{field}.shape: input {:?} expects {} dimensions {} (batch first), got {shape:?}",
            spec.name,
            spec.dims.len() + 1,
            dims_text(&spec.dims)
        )));
    }
    if let Some(d) = shape.iter().find(|&&d| d < 0) {
        return Err(unprocessable(format!(
            "{field}.shape: dimensions must be non-negative, got {d} in {shape:?}"
        )));
    }
    for (j, (&want, &got)) in spec.dims.iter().zip(&shape[1..]).enumerate() {
        if want != -1 && want != got {
            return Err(unprocessable(format!(
                "{field}.shape: input {:?} expects {} (batch first), got {shape:?} (dimension {} should be {want})",
                spec.name,
                dims_text(&spec.dims),
                j + 1
            )));
        }
        if got == 0 {
            return Err(unprocessable(format!(
                "{field}.shape: dimension {} is 0 in {shape:?}; empty tensors are not served",
                j + 1
            )));
        }
    }
    let rows = shape[0] as usize;
    if rows == 0 || rows > max_batch_size {
        return Err(unprocessable(format!(
            "{field}.shape: the batch dimension must be in 1..={max_batch_size} (the model's max_batch_size), got {rows}"
        )));
    }
    shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| unprocessable(format!("{field}.shape: {d} is too large")))
        })
        .collect()
}

fn binary_size(
    field: &str,
    params: Option<&Map<String, Value>>,
) -> Result<Option<usize>, ApiError> {
    match params.and_then(|p| p.get("binary_data_size")) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{field}.parameters.binary_data_size: expected a non-negative integer, got {v}"
                ))
            }),
    }
}

/// Decodes `count` little-endian elements of `datatype` from `bytes`.
fn from_bytes(
    field: &str,
    datatype: DataType,
    bytes: &[u8],
    count: usize,
) -> Result<TensorData, ApiError> {
    let want = count.checked_mul(datatype.size_bytes());
    if want != Some(bytes.len()) {
        return Err(unprocessable(format!(
            "{field}.parameters.binary_data_size: the shape needs {count} {datatype} values ({} bytes), got {} bytes",
            want.map_or("too many".to_string(), |w| w.to_string()),
            bytes.len()
        )));
    }
    macro_rules! le {
        ($t:ty, $n:expr, $variant:ident) => {
            TensorData::$variant(
                bytes
                    .chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                    .collect(),
            )
        };
    }
    Ok::<_, ApiError>(match datatype {
        DataType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DataType::U8 => TensorData::U8(bytes.to_vec()),
        DataType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::I32 => le!(i32, 4, I32),
        DataType::I64 => le!(i64, 8, I64),
        DataType::F32 => le!(f32, 4, F32),
        DataType::F64 => le!(f64, 8, F64),
    })
    .and_then(|data| refuse_non_finite(field, data))
}

/// NaN and ±Inf policy: refused with 422 naming the first such element. JSON cannot
/// carry them at all; binary data could, and a model fed NaN answers NaN (or worse,
/// poisons a whole batch's reductions), so they stop at the door.
fn refuse_non_finite(field: &str, data: TensorData) -> Result<TensorData, ApiError> {
    let first_bad = match &data {
        TensorData::F32(v) => v.iter().position(|x| !x.is_finite()),
        TensorData::F64(v) => v.iter().position(|x| !x.is_finite()),
        _ => None,
    };
    match first_bad {
        Some(i) => Err(unprocessable(format!(
            "{field}: element {i} is NaN or infinite; only finite numbers are accepted"
        ))),
        None => Ok(data),
    }
}

/// Decodes JSON `data` (flat or nested) into exactly `count` elements of `datatype`.
fn from_json(
    field: &str,
    datatype: DataType,
    value: &Value,
    count: usize,
) -> Result<TensorData, ApiError> {
    let mut flat: Vec<&Value> = Vec::with_capacity(count.min(1 << 20));
    flatten(field, value, 0, count, &mut flat)?;
    if flat.len() != count {
        return Err(unprocessable(format!(
            "{field}.data: the shape needs {count} values, got {}",
            flat.len()
        )));
    }
    let bad = |i: usize, v: &Value, what: &str| {
        unprocessable(format!(
            "{field}.data[{i}]: expected {what} for {datatype}, got {v}"
        ))
    };
    macro_rules! ints {
        ($t:ty, $variant:ident, $what:expr) => {{
            let mut out = Vec::with_capacity(count);
            for (i, v) in flat.iter().enumerate() {
                let x = v
                    .as_i64()
                    .and_then(|x| <$t>::try_from(x).ok())
                    .ok_or_else(|| bad(i, v, $what))?;
                out.push(x);
            }
            TensorData::$variant(out)
        }};
    }
    Ok(match datatype {
        DataType::Bool => {
            let mut out = Vec::with_capacity(count);
            for (i, v) in flat.iter().enumerate() {
                out.push(v.as_bool().ok_or_else(|| bad(i, v, "true or false"))?);
            }
            TensorData::Bool(out)
        }
        DataType::U8 => ints!(u8, U8, "an integer in 0..=255"),
        DataType::I8 => ints!(i8, I8, "an integer in -128..=127"),
        DataType::I32 => ints!(i32, I32, "a 32-bit integer"),
        DataType::I64 => ints!(i64, I64, "a 64-bit integer"),
        DataType::F32 => {
            let mut out = Vec::with_capacity(count);
            for (i, v) in flat.iter().enumerate() {
                let x = v.as_f64().ok_or_else(|| bad(i, v, "a number"))?;
                let y = x as f32;
                if y.is_infinite() {
                    return Err(bad(i, v, "a number within the FP32 range"));
                }
                out.push(y);
            }
            TensorData::F32(out)
        }
        DataType::F64 => {
            let mut out = Vec::with_capacity(count);
            for (i, v) in flat.iter().enumerate() {
                out.push(v.as_f64().ok_or_else(|| bad(i, v, "a number"))?);
            }
            TensorData::F64(out)
        }
    })
}

/// Collects the scalars of nested arrays in row-major order; stops early once more than
/// `limit` values were seen (the caller reports the mismatch).
fn flatten<'a>(
    field: &str,
    v: &'a Value,
    depth: usize,
    limit: usize,
    out: &mut Vec<&'a Value>,
) -> Result<(), ApiError> {
    match v {
        Value::Array(items) => {
            if depth >= MAX_NESTING {
                return Err(ApiError::BadRequest(format!(
                    "{field}.data: arrays nested deeper than {MAX_NESTING} levels"
                )));
            }
            for item in items {
                if out.len() > limit {
                    return Ok(());
                }
                flatten(field, item, depth + 1, limit, out)?;
            }
            Ok(())
        }
        other => {
            out.push(other);
            Ok(())
        }
    }
}

/// Header giving a request's timeout in milliseconds (the v2 `timeout` parameter, in
/// microseconds as Triton has it, wins when both are given).
pub const TIMEOUT_HEADER: &str = "x-convoy-timeout-ms";

/// A request's deadline and priority level, from its v2 `parameters` (`timeout` in µs,
/// `priority` with 0 = the model's default), the timeout header, and the model's defaults.
pub fn schedule(
    params: Option<&Map<String, Value>>,
    header_ms: Option<&str>,
    cfg: &crate::repository::config::BatchingConfig,
    arrived: std::time::Instant,
) -> Result<(Option<std::time::Instant>, u32), ApiError> {
    use std::time::Duration;
    let param = |key: &str| params.and_then(|p| p.get(key));
    let timeout = match (param("timeout"), header_ms) {
        (Some(v), _) => Some(Duration::from_micros(v.as_u64().filter(|&t| t > 0).ok_or_else(|| {
            ApiError::BadRequest(format!("parameters.timeout: expected a positive number of microseconds, got {v}"))
        })?)),
        (None, Some(h)) => Some(Duration::from_millis(h.trim().parse::<u64>().ok().filter(|&t| t > 0).ok_or_else(|| {
            ApiError::BadRequest(format!("header {TIMEOUT_HEADER}: expected a positive number of milliseconds, got {h:?}"))
        })?)),
        (None, None) => cfg.default_timeout,
    };
    let priority = match param("priority") {
        None => cfg.default_priority,
        Some(v) => match v.as_u64() {
            Some(0) => cfg.default_priority,
            Some(p) if p <= cfg.priority_levels as u64 => p as u32,
            _ => {
                return Err(ApiError::Unprocessable(format!(
                    "parameters.priority: expected 0 (the model's default) or a level in 1..={} (1 = highest), got {v}",
                    cfg.priority_levels
                )))
            }
        },
    };
    // A timeout too large to add to the clock means no deadline.
    Ok((timeout.and_then(|t| arrived.checked_add(t)), priority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs() -> Vec<TensorSpec> {
        vec![
            TensorSpec {
                name: "x".into(),
                datatype: DataType::F32,
                dims: vec![2],
            },
            TensorSpec {
                name: "mask".into(),
                datatype: DataType::I64,
                dims: vec![-1],
            },
        ]
    }

    fn input(v: Value) -> InferInputRequest {
        serde_json::from_value(v).unwrap()
    }

    fn decode(inputs: Vec<Value>) -> Result<ValidInputs, ApiError> {
        decode_inputs(
            "m",
            inputs.into_iter().map(input).collect(),
            &specs(),
            4,
            &[],
        )
    }

    #[test]
    fn nested_and_flat_data_agree_and_follow_declared_order() {
        let a = decode(vec![
            json!({"name": "mask", "shape": [2, 3], "datatype": "INT64", "data": [1, 1, 1, 1, 0, 0]}),
            json!({"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]}),
        ])
        .unwrap();
        assert_eq!(a.rows, 2);
        assert_eq!(a.shape_key.as_ref(), &[2, 3]);
        assert_eq!(a.tensors[0].data, TensorData::F32(vec![1.0, 2.0, 3.0, 4.5]));
        assert_eq!(a.tensors[1].shape, vec![2, 3]);
    }

    fn message(inputs: Vec<Value>) -> (u16, String) {
        let e = decode(inputs).unwrap_err();
        (e.status().as_u16(), e.to_string())
    }

    #[test]
    fn each_rule_names_the_field() {
        let x = |extra: Value| {
            let mut base =
                json!({"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]});
            base.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            base
        };
        let m = json!({"name": "mask", "shape": [1, 1], "datatype": "INT64", "data": [1]});
        let cases: Vec<(Vec<Value>, u16, &str)> = vec![
            (
                vec![x(json!({"name": "y"})), m.clone()],
                422,
                "inputs[0].name: model \"m\" has no input \"y\"",
            ),
            (
                vec![x(json!({"datatype": "INT32"})), m.clone()],
                422,
                "inputs[0].datatype: input \"x\" expects FP32, got \"INT32\"",
            ),
            (
                vec![x(json!({"data": [1]})), m.clone()],
                422,
                "inputs[0].data: the shape needs 2 values, got 1",
            ),
            (
                vec![x(json!({"shape": [1, 3], "data": [1, 2, 3]})), m.clone()],
                422,
                "dimension 1 should be 2",
            ),
            (vec![x(json!({"shape": [5, 2]})), m.clone()], 422, "1..=4"),
            (
                vec![x(json!({"data": [1, "a"]})), m.clone()],
                422,
                "inputs[0].data[1]: expected a number for FP32, got \"a\"",
            ),
            (
                vec![x(json!({"data": [1, 1e300]})), m.clone()],
                422,
                "FP32 range",
            ),
            (vec![x(json!({}))], 422, "needs input \"mask\""),
            (vec![x(json!({})), x(json!({}))], 422, "given twice"),
            (
                vec![m.clone(), x(json!({"shape": [2, 2], "data": [1, 2, 3, 4]}))],
                422,
                "same batch size",
            ),
            (
                vec![x(json!({"shape": [1, -2]})), m.clone()],
                422,
                "non-negative",
            ),
            (
                vec![
                    json!({"name": "x", "shape": [1, 2], "datatype": "FP32"}),
                    m.clone(),
                ],
                400,
                "inputs[0].data: missing",
            ),
        ];
        for (inputs, status, want) in cases {
            let (got_status, got) = message(inputs);
            assert_eq!(got_status, status, "{got}");
            assert!(got.contains(want), "{got:?} should contain {want:?}");
        }
    }

    #[test]
    fn integer_ranges_are_checked() {
        let m = json!({"name": "mask", "shape": [1, 1], "datatype": "INT64", "data": [1.5]});
        let x = json!({"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]});
        let (_, e) = message(vec![x, m]);
        assert!(
            e.contains("inputs[1].data[0]: expected a 64-bit integer"),
            "{e}"
        );
    }

    #[test]
    fn binary_data_is_read_in_order_and_bounds_checked() {
        let mut bytes = Vec::new();
        for f in [1.0f32, 2.0] {
            bytes.extend_from_slice(&f.to_le_bytes());
        }
        bytes.extend_from_slice(&7i64.to_le_bytes());
        let inputs = vec![
            json!({"name": "x", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}),
            json!({"name": "mask", "shape": [1, 1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}),
        ];
        let ok = decode_inputs(
            "m",
            inputs.iter().cloned().map(input).collect(),
            &specs(),
            4,
            &bytes,
        )
        .unwrap();
        assert_eq!(ok.tensors[1].data, TensorData::I64(vec![7]));
        let short = decode_inputs(
            "m",
            inputs.into_iter().map(input).collect(),
            &specs(),
            4,
            &bytes[..12],
        );
        assert_eq!(short.unwrap_err().status().as_u16(), 400);
    }

    #[test]
    fn schedule_reads_timeout_and_priority() {
        use crate::repository::config::BatchingConfig;
        use std::time::{Duration, Instant};
        let cfg = BatchingConfig {
            priority_levels: 3,
            default_priority: 2,
            default_timeout: Some(Duration::from_secs(1)),
            ..BatchingConfig::default()
        };
        let t0 = Instant::now();
        let params = |v: Value| v.as_object().cloned();
        assert_eq!(
            schedule(None, None, &cfg, t0).unwrap(),
            (Some(t0 + Duration::from_secs(1)), 2)
        );
        let p = params(json!({"timeout": 2500, "priority": 1}));
        assert_eq!(
            schedule(p.as_ref(), Some("9"), &cfg, t0).unwrap(),
            (Some(t0 + Duration::from_micros(2500)), 1)
        );
        assert_eq!(
            schedule(None, Some("9"), &cfg, t0).unwrap().0,
            Some(t0 + Duration::from_millis(9))
        );
        let p = params(json!({"priority": 4}));
        let e = schedule(p.as_ref(), None, &cfg, t0).unwrap_err();
        assert_eq!(e.status().as_u16(), 422);
        assert!(e.to_string().contains("1..=3"), "{e}");
        let p = params(json!({"timeout": "soon"}));
        assert_eq!(
            schedule(p.as_ref(), None, &cfg, t0)
                .unwrap_err()
                .status()
                .as_u16(),
            400
        );
        assert_eq!(
            schedule(None, Some("-1"), &cfg, t0)
                .unwrap_err()
                .status()
                .as_u16(),
            400
        );
    }

    #[test]
    fn non_finite_binary_floats_are_refused() {
        let mut bytes = Vec::new();
        for f in [1.0f32, f32::NAN] {
            bytes.extend_from_slice(&f.to_le_bytes());
        }
        bytes.extend_from_slice(&7i64.to_le_bytes());
        let inputs = vec![
            json!({"name": "x", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}),
            json!({"name": "mask", "shape": [1, 1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}),
        ];
        let e = decode_inputs(
            "m",
            inputs.into_iter().map(input).collect(),
            &specs(),
            4,
            &bytes,
        )
        .unwrap_err();
        assert_eq!(e.status().as_u16(), 422);
        assert!(
            e.to_string().contains("element 1 is NaN or infinite"),
            "{e}"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut data = json!(1);
        for _ in 0..40 {
            data = json!([data]);
        }
        let x = json!({"name": "x", "shape": [1, 2], "datatype": "FP32", "data": data});
        let (status, e) = message(vec![x]);
        assert_eq!(status, 400);
        assert!(e.contains("nested deeper"), "{e}");
    }
}
