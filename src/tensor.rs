//! Typed tensors: the one data type shared by the HTTP layer, the batcher and the backend.
//!
//! The wire format (JSON numbers, nested arrays) never reaches this module's users past the
//! decoder; the backend never sees JSON.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Element types of the Open Inference Protocol that Convoy serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    #[serde(rename = "BOOL")]
    Bool,
    #[serde(rename = "UINT8")]
    U8,
    #[serde(rename = "INT8")]
    I8,
    #[serde(rename = "INT32")]
    I32,
    #[serde(rename = "INT64")]
    I64,
    #[serde(rename = "FP32")]
    F32,
    #[serde(rename = "FP64")]
    F64,
}

impl DataType {
    /// All served types, in the order error messages list them.
    pub const ALL: [DataType; 7] = [
        DataType::Bool,
        DataType::U8,
        DataType::I8,
        DataType::I32,
        DataType::I64,
        DataType::F32,
        DataType::F64,
    ];

    /// The protocol's name (`"FP32"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::U8 => "UINT8",
            DataType::I8 => "INT8",
            DataType::I32 => "INT32",
            DataType::I64 => "INT64",
            DataType::F32 => "FP32",
            DataType::F64 => "FP64",
        }
    }

    /// Parses a protocol name; `None` for a type Convoy does not serve.
    pub fn parse(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// Triton's model-config spelling (`TYPE_FP32`).
    pub fn triton_name(self) -> String {
        format!("TYPE_{}", self.as_str())
    }

    /// Size of one element in bytes (the binary tensor extension and memory limits use it).
    pub fn size_bytes(self) -> usize {
        match self {
            DataType::Bool | DataType::U8 | DataType::I8 => 1,
            DataType::I32 | DataType::F32 => 4,
            DataType::I64 | DataType::F64 => 8,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A flat, row-major buffer of one element type.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Runs `$body` with `$v` bound to the inner vector, whatever the variant.
macro_rules! with_tensor_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::tensor::TensorData::Bool($v) => $body,
            $crate::tensor::TensorData::U8($v) => $body,
            $crate::tensor::TensorData::I8($v) => $body,
            $crate::tensor::TensorData::I32($v) => $body,
            $crate::tensor::TensorData::I64($v) => $body,
            $crate::tensor::TensorData::F32($v) => $body,
            $crate::tensor::TensorData::F64($v) => $body,
        }
    };
}
pub(crate) use with_tensor_data;

/// Same as [`with_tensor_data`], but rebuilds the same variant from the body's vector.
macro_rules! map_tensor_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::U8($v) => TensorData::U8($body),
            TensorData::I8($v) => TensorData::I8($body),
            TensorData::I32($v) => TensorData::I32($body),
            TensorData::I64($v) => TensorData::I64($body),
            TensorData::F32($v) => TensorData::F32($body),
            TensorData::F64($v) => TensorData::F64($body),
        }
    };
}

impl TensorData {
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::U8(_) => DataType::U8,
            TensorData::I8(_) => DataType::I8,
            TensorData::I32(_) => DataType::I32,
            TensorData::I64(_) => DataType::I64,
            TensorData::F32(_) => DataType::F32,
            TensorData::F64(_) => DataType::F64,
        }
    }

    pub fn len(&self) -> usize {
        with_tensor_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty buffer of `datatype` with room for `capacity` elements.
    pub fn with_capacity(datatype: DataType, capacity: usize) -> TensorData {
        match datatype {
            DataType::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            DataType::U8 => TensorData::U8(Vec::with_capacity(capacity)),
            DataType::I8 => TensorData::I8(Vec::with_capacity(capacity)),
            DataType::I32 => TensorData::I32(Vec::with_capacity(capacity)),
            DataType::I64 => TensorData::I64(Vec::with_capacity(capacity)),
            DataType::F32 => TensorData::F32(Vec::with_capacity(capacity)),
            DataType::F64 => TensorData::F64(Vec::with_capacity(capacity)),
        }
    }

    /// Appends `other` (same type) to `self`; false when the types differ.
    pub fn extend_from(&mut self, other: &TensorData) -> bool {
        match (self, other) {
            (TensorData::Bool(a), TensorData::Bool(b)) => a.extend_from_slice(b),
            (TensorData::U8(a), TensorData::U8(b)) => a.extend_from_slice(b),
            (TensorData::I8(a), TensorData::I8(b)) => a.extend_from_slice(b),
            (TensorData::I32(a), TensorData::I32(b)) => a.extend_from_slice(b),
            (TensorData::I64(a), TensorData::I64(b)) => a.extend_from_slice(b),
            (TensorData::F32(a), TensorData::F32(b)) => a.extend_from_slice(b),
            (TensorData::F64(a), TensorData::F64(b)) => a.extend_from_slice(b),
            _ => return false,
        }
        true
    }

    /// Appends `rows` rows of `src` (each of shape `from`), each zero-padded at the end
    /// of every dimension to shape `to` (`to[d] >= from[d]`); false when types differ.
    pub fn extend_padded(
        &mut self,
        src: &TensorData,
        rows: usize,
        from: &[usize],
        to: &[usize],
    ) -> bool {
        macro_rules! pad {
            ($a:expr, $b:expr) => {{
                let row = element_count(from).unwrap_or(0);
                for r in 0..rows {
                    pad_block($a, &$b[r * row..(r + 1) * row], from, to);
                }
            }};
        }
        match (self, src) {
            (TensorData::Bool(a), TensorData::Bool(b)) => pad!(a, b),
            (TensorData::U8(a), TensorData::U8(b)) => pad!(a, b),
            (TensorData::I8(a), TensorData::I8(b)) => pad!(a, b),
            (TensorData::I32(a), TensorData::I32(b)) => pad!(a, b),
            (TensorData::I64(a), TensorData::I64(b)) => pad!(a, b),
            (TensorData::F32(a), TensorData::F32(b)) => pad!(a, b),
            (TensorData::F64(a), TensorData::F64(b)) => pad!(a, b),
            _ => return false,
        }
        true
    }

    /// A copy of elements `range` (used to split a batch's output per request).
    pub fn slice(&self, range: std::ops::Range<usize>) -> TensorData {
        map_tensor_data!(self, v => v[range].to_vec())
    }
}

/// Appends one block of shape `from` (row-major in `src`), zero-padded to `to`.
fn pad_block<T: Copy + Default>(out: &mut Vec<T>, src: &[T], from: &[usize], to: &[usize]) {
    match (from, to) {
        ([], _) => out.extend_from_slice(&src[..1]),
        ([f], [t]) => {
            out.extend_from_slice(&src[..*f]);
            out.resize(out.len() + (t - f), T::default());
        }
        ([f, from_rest @ ..], [t, to_rest @ ..]) => {
            let src_stride = element_count(from_rest).unwrap_or(0);
            let dst_stride = element_count(to_rest).unwrap_or(0);
            for i in 0..*f {
                pad_block(
                    out,
                    &src[i * src_stride..(i + 1) * src_stride],
                    from_rest,
                    to_rest,
                );
            }
            out.resize(out.len() + (t - f) * dst_stride, T::default());
        }
        _ => {}
    }
}

/// A tensor: shape (all dimensions, batch first when batched) and data.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// Elements in one row (product of the non-batch dimensions).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Number of rows (the first dimension; 1 for a scalar).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}

/// One declared input or output of a graph; `dims` exclude the batch dimension when the
/// model batches, and -1 marks a dynamic dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub dims: Vec<i64>,
}

/// An element type as a model serves it: a numeric type, or BYTES (byte strings: texts,
/// encoded images), which only pipeline models take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServedType {
    Numeric(DataType),
    Bytes,
}

impl ServedType {
    /// The protocol's name (`"FP32"`, `"BYTES"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ServedType::Numeric(d) => d.as_str(),
            ServedType::Bytes => "BYTES",
        }
    }

    /// Parses a protocol name; `None` for a type Convoy does not serve.
    pub fn parse(name: &str) -> Option<ServedType> {
        match name {
            "BYTES" => Some(ServedType::Bytes),
            other => DataType::parse(other).map(ServedType::Numeric),
        }
    }

    /// Triton's model-config spelling (`TYPE_FP32`, `TYPE_STRING`).
    pub fn triton_name(self) -> String {
        match self {
            ServedType::Numeric(d) => d.triton_name(),
            ServedType::Bytes => "TYPE_STRING".into(),
        }
    }
}

impl fmt::Display for ServedType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tensor as a model serves it to clients (metadata, `/config` and every door's
/// validation use the same list); `dims` exclude the batch dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct ServedSpec {
    pub name: String,
    pub datatype: ServedType,
    pub dims: Vec<i64>,
}

impl From<&TensorSpec> for ServedSpec {
    fn from(s: &TensorSpec) -> ServedSpec {
        ServedSpec {
            name: s.name.clone(),
            datatype: ServedType::Numeric(s.datatype),
            dims: s.dims.clone(),
        }
    }
}

/// The data of one input as a front door hands it to the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Numeric(TensorData),
    /// One byte string per element, row-major.
    Bytes(Vec<bytes::Bytes>),
}

impl Payload {
    pub fn served_type(&self) -> ServedType {
        match self {
            Payload::Numeric(d) => ServedType::Numeric(d.datatype()),
            Payload::Bytes(_) => ServedType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Payload::Numeric(d) => d.len(),
            Payload::Bytes(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Product of `dims`, or `None` on overflow (hostile shapes must not wrap around).
pub fn element_count(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatype_names_round_trip() {
        for d in DataType::ALL {
            assert_eq!(DataType::parse(d.as_str()), Some(d));
        }
        assert_eq!(DataType::parse("FP16"), None);
        assert_eq!(DataType::F32.triton_name(), "TYPE_FP32");
    }

    #[test]
    fn extend_refuses_other_types() {
        let mut a = TensorData::F32(vec![1.0]);
        assert!(a.extend_from(&TensorData::F32(vec![2.0])));
        assert!(!a.extend_from(&TensorData::I64(vec![3])));
        assert_eq!(a, TensorData::F32(vec![1.0, 2.0]));
        assert_eq!(a.slice(1..2), TensorData::F32(vec![2.0]));
    }

    #[test]
    fn element_count_detects_overflow() {
        assert_eq!(element_count(&[2, 3, 4]), Some(24));
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[usize::MAX, 2]), None);
    }
}
