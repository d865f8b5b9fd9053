//! The shared decoder of v2 requests (JSON, and JSON plus binary data with Triton's
//! binary tensor extension): wire tensors into the core's typed [`Input`]s, for every
//! kind of model. Pure; the core then checks them against the model. Decided here, once:
//!
//! - `data` is flat (`[1, 2, 3, 4]`) or nested exactly as the shape (`[[1, 2], [3, 4]]`);
//!   any other nesting is refused;
//! - an input carries `data` or `parameters.binary_data_size`, never both;
//! - BYTES elements are strings in JSON, and 4-byte little-endian lengths each followed
//!   by that many bytes in binary data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::dto::{InferInputRequest, InferRequest};
use crate::error::{Error, Result};
use crate::service::{Input, OutputRequest, Request, Schedule};
use crate::tensor::{element_count, DataType, Payload, ServedType, TensorData};

/// Header giving a request's timeout in milliseconds (the v2 `timeout` parameter, in
/// microseconds as Triton has it, wins when both are given).
pub const TIMEOUT_HEADER: &str = "x-convoy-timeout-ms";

/// A v2 request, its JSON parsed, with `binary` the bytes after the JSON (empty without
/// the binary extension), as the core's request.
pub fn request(body: InferRequest, binary: &[u8]) -> Result<Request> {
    let params = body.parameters.as_ref();
    let binary_default = flag(params, "binary_data_output", "parameters")?.unwrap_or(false);
    let outputs = match body.outputs {
        None => None,
        Some(list) => Some(
            list.into_iter()
                .enumerate()
                .map(|(i, o)| {
                    let field = format!("outputs[{i}].parameters");
                    let binary = flag(o.parameters.as_ref(), "binary_data", &field)?;
                    Ok(OutputRequest {
                        name: o.name,
                        binary,
                    })
                })
                .collect::<Result<_>>()?,
        ),
    };
    Ok(Request {
        id: body.id,
        inputs: decode_inputs(body.inputs, binary)?,
        outputs,
        binary_default,
        truncate: None,
    })
}

/// A boolean parameter: absent, or `true`/`false`.
fn flag(params: Option<&Map<String, Value>>, key: &str, field: &str) -> Result<Option<bool>> {
    match params.and_then(|p| p.get(key)) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(Error::bad_request(format!(
            "{field}.{key}: expected true or false, got {other}"
        ))),
    }
}

/// Decodes every input; `binary` is consumed in order by the inputs that declare a
/// `binary_data_size`, and must be used up exactly.
pub fn decode_inputs(inputs: Vec<InferInputRequest>, binary: &[u8]) -> Result<Vec<Input>> {
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let field = format!("inputs[{i}]");
        let datatype = ServedType::parse(&input.datatype).ok_or_else(|| {
            let known: Vec<&str> = DataType::ALL.iter().map(|d| d.as_str()).collect();
            Error::unprocessable(format!(
                "{field}.datatype: expected one of {}, BYTES; got {:?}",
                known.join(", "),
                input.datatype
            ))
        })?;
        let shape = input
            .shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<usize>, _>>()
            .map_err(|_| {
                Error::unprocessable(format!(
                    "{field}.shape: dimensions must be non-negative, got {:?}",
                    input.shape
                ))
            })?;
        let count = element_count(&shape).ok_or_else(|| {
            Error::unprocessable(format!("{field}.shape: {shape:?} has too many elements"))
        })?;
        let size = binary_size(&field, input.parameters.as_ref())?;
        let payload = match (size, input.data) {
            (Some(_), Some(_)) => {
                return Err(Error::bad_request(format!(
                    "{field}: give `data` or `parameters.binary_data_size`, not both"
                )))
            }
            (Some(size), None) => {
                let end = offset
                    .checked_add(size)
                    .filter(|&e| e <= binary.len())
                    .ok_or_else(|| {
                        Error::bad_request(format!(
                            "{field}.parameters.binary_data_size: {size} bytes at offset {offset} run past the {} bytes of binary data",
                            binary.len()
                        ))
                    })?;
                let bytes = &binary[offset..end];
                offset = end;
                from_bytes(&field, datatype, bytes, count)?
            }
            (None, Some(value)) => from_json(&field, datatype, &value, &shape, count)?,
            (None, None) => {
                return Err(Error::bad_request(format!(
                    "{field}.data: missing (give `data`, or `parameters.binary_data_size` with binary data)"
                )))
            }
        };
        out.push(Input::new(input.name, shape, payload));
    }
    if offset != binary.len() {
        return Err(Error::bad_request(format!(
            "binary data: the inputs' binary_data_size add up to {offset} bytes, the body carries {}",
            binary.len()
        )));
    }
    Ok(out)
}

fn binary_size(field: &str, params: Option<&Map<String, Value>>) -> Result<Option<usize>> {
    match params.and_then(|p| p.get("binary_data_size")) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                Error::bad_request(format!(
                    "{field}.parameters.binary_data_size: expected a non-negative integer, got {v}"
                ))
            }),
    }
}

/// Decodes `count` elements of `datatype` from raw bytes: little-endian numbers, or
/// length-prefixed BYTES elements.
fn from_bytes(field: &str, datatype: ServedType, bytes: &[u8], count: usize) -> Result<Payload> {
    let datatype = match datatype {
        ServedType::Bytes => {
            let elements = split_bytes_elements(field, bytes)?;
            if elements.len() != count {
                return Err(Error::unprocessable(format!(
                    "{field}: the shape needs {count} BYTES elements, the binary data holds {}",
                    elements.len()
                )));
            }
            return Ok(Payload::Bytes(elements));
        }
        ServedType::Numeric(d) => d,
    };
    let want = count.checked_mul(datatype.size_bytes());
    if want != Some(bytes.len()) {
        return Err(Error::unprocessable(format!(
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
    Ok(Payload::Numeric(match datatype {
        DataType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        DataType::U8 => TensorData::U8(bytes.to_vec()),
        DataType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
        DataType::I32 => le!(i32, 4, I32),
        DataType::I64 => le!(i64, 8, I64),
        DataType::F32 => le!(f32, 4, F32),
        DataType::F64 => le!(f64, 8, F64),
    }))
}

/// Splits Triton's binary BYTES encoding: each element is a 4-byte little-endian length
/// followed by that many bytes.
pub fn split_bytes_elements(field: &str, mut raw: &[u8]) -> Result<Vec<bytes::Bytes>> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let bad =
            || Error::bad_request(format!("{field}: BYTES element {} is cut short", out.len()));
        let len_bytes: [u8; 4] = raw
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        let body = raw.get(4..4 + len).ok_or_else(bad)?;
        out.push(bytes::Bytes::copy_from_slice(body));
        raw = &raw[4 + len..];
    }
    Ok(out)
}

/// Decodes JSON `data`, flat or nested exactly as `shape`, into `count` elements.
fn from_json(
    field: &str,
    datatype: ServedType,
    value: &Value,
    shape: &[usize],
    count: usize,
) -> Result<Payload> {
    let mut flat: Vec<&Value> = Vec::with_capacity(count.min(1 << 20));
    let is_flat = matches!(value, Value::Array(items) if !items.iter().any(Value::is_array));
    if is_flat {
        if let Value::Array(items) = value {
            flat.extend(items);
        }
    } else {
        nested(field, value, shape, &mut flat)?;
    }
    if flat.len() != count {
        return Err(Error::unprocessable(format!(
            "{field}.data: the shape {shape:?} needs {count} values, got {}",
            flat.len()
        )));
    }
    scalars(field, datatype, &flat)
}

/// Collects the values of `v`, which must be arrays nested exactly as `shape` (each level
/// as long as its dimension), in row-major order.
fn nested<'a>(field: &str, v: &'a Value, shape: &[usize], out: &mut Vec<&'a Value>) -> Result<()> {
    let mismatch = |what: String| {
        Error::unprocessable(format!(
            "{field}.data: nested arrays must follow the shape {shape:?} (or give the values flat); {what}"
        ))
    };
    match (v, shape.split_first()) {
        (Value::Array(items), Some((&dim, rest))) => {
            if items.len() != dim {
                return Err(mismatch(format!(
                    "found {} values where the shape has {dim}",
                    items.len()
                )));
            }
            for item in items {
                nested(field, item, rest, out)?;
            }
            Ok(())
        }
        (Value::Array(_), None) => Err(mismatch("found arrays nested deeper".into())),
        (_, Some(_)) => Err(mismatch("found a value where an array belongs".into())),
        (scalar, None) => {
            out.push(scalar);
            Ok(())
        }
    }
}

/// JSON scalars as elements of `datatype`.
fn scalars(field: &str, datatype: ServedType, flat: &[&Value]) -> Result<Payload> {
    let bad = |i: usize, v: &Value, what: &str| {
        Error::unprocessable(format!(
            "{field}.data[{i}]: expected {what} for {datatype}, got {v}"
        ))
    };
    let datatype = match datatype {
        ServedType::Bytes => {
            let mut out = Vec::with_capacity(flat.len());
            for (i, v) in flat.iter().enumerate() {
                let s = v.as_str().ok_or_else(|| bad(i, v, "a string"))?;
                out.push(bytes::Bytes::copy_from_slice(s.as_bytes()));
            }
            return Ok(Payload::Bytes(out));
        }
        ServedType::Numeric(d) => d,
    };
    macro_rules! each {
        ($variant:ident, $what:expr, |$v:ident| $convert:expr) => {{
            let mut out = Vec::with_capacity(flat.len());
            for (i, $v) in flat.iter().enumerate() {
                out.push($convert.ok_or_else(|| bad(i, $v, $what))?);
            }
            TensorData::$variant(out)
        }};
    }
    Ok(Payload::Numeric(match datatype {
        DataType::Bool => each!(Bool, "true or false", |v| v.as_bool()),
        DataType::U8 => each!(U8, "an integer in 0..=255", |v| v
            .as_i64()
            .and_then(|x| u8::try_from(x).ok())),
        DataType::I8 => each!(I8, "an integer in -128..=127", |v| v
            .as_i64()
            .and_then(|x| i8::try_from(x).ok())),
        DataType::I32 => each!(I32, "a 32-bit integer", |v| v
            .as_i64()
            .and_then(|x| i32::try_from(x).ok())),
        DataType::I64 => each!(I64, "a 64-bit integer", |v| v.as_i64()),
        DataType::F32 => each!(F32, "a number within the FP32 range", |v| v
            .as_f64()
            .map(|x| x as f32)
            .filter(|y| y.is_finite())),
        DataType::F64 => each!(F64, "a number", |v| v.as_f64()),
    }))
}

/// How a request is scheduled: its v2 `parameters` (`timeout` in µs, `priority` with
/// 0 = the model's default) and the timeout header; the model fills in the rest.
pub fn schedule(
    params: Option<&Map<String, Value>>,
    header_ms: Option<&str>,
    arrived: Instant,
    request_id: Arc<str>,
) -> Result<Schedule> {
    let param = |key: &str| params.and_then(|p| p.get(key));
    let timeout = match (param("timeout"), header_ms) {
        (Some(v), _) => Some(Duration::from_micros(
            v.as_u64().filter(|&t| t > 0).ok_or_else(|| {
                Error::bad_request(format!(
                    "parameters.timeout: expected a positive number of microseconds, got {v}"
                ))
            })?,
        )),
        (None, Some(h)) => Some(Duration::from_millis(
            h.trim()
                .parse::<u64>()
                .ok()
                .filter(|&t| t > 0)
                .ok_or_else(|| {
                    Error::bad_request(format!(
                        "header {TIMEOUT_HEADER}: expected a positive number of milliseconds, got {h:?}"
                    ))
                })?,
        )),
        (None, None) => None,
    };
    let priority = match param("priority") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            Error::unprocessable(format!(
                "parameters.priority: expected 0 (the model's default) or a level from 1 (highest), got {v}"
            ))
        })?),
    };
    Ok(Schedule {
        arrived,
        timeout,
        priority,
        request_id,
    })
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
