//! Conversions between Convoy tensors and ONNX Runtime values.

use ort::memory::Allocator;
use ort::session::SessionInputValue;
use ort::value::{DynValue, PrimitiveTensorElementType, TensorElementType, TensorRef, ValueType};

use crate::backend::{BackendError, GraphTensor};
use crate::tensor::{DataType, Tensor, TensorData};

pub(super) fn graph_tensor(name: &str, ty: &ValueType) -> GraphTensor {
    match ty {
        ValueType::Tensor { ty, shape, .. } => GraphTensor {
            name: name.to_string(),
            datatype: from_ort_type(*ty),
            shape: shape.iter().copied().collect(),
        },
        _ => GraphTensor {
            name: name.to_string(),
            datatype: None,
            shape: vec![],
        },
    }
}

fn from_ort_type(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::U8,
        TensorElementType::Int8 => DataType::I8,
        TensorElementType::Int32 => DataType::I32,
        TensorElementType::Int64 => DataType::I64,
        TensorElementType::Float32 => DataType::F32,
        TensorElementType::Float64 => DataType::F64,
        _ => return None,
    })
}
/// A copy of `data` in memory from `allocator`, as an owned ORT tensor.
pub(super) fn staged<T>(
    allocator: &Allocator,
    shape: &[usize],
    data: &[T],
) -> Result<DynValue, ort::Error>
where
    T: PrimitiveTensorElementType + Copy + std::fmt::Debug,
{
    let mut value = ort::value::Tensor::<T>::new(allocator, shape.to_vec())?;
    let (_, dst) = value.extract_tensor_mut();
    dst.copy_from_slice(data);
    Ok(value.into_dyn())
}

/// Copies each output of a run out of ONNX Runtime, in `specs` order.
pub(super) fn collect_outputs(
    specs: &[GraphTensor],
    outputs: &ort::session::SessionOutputs<'_>,
) -> Result<Vec<Tensor>, BackendError> {
    specs
        .iter()
        .map(|spec| {
            let value = outputs
                .get(&spec.name)
                .ok_or_else(|| BackendError::Output {
                    name: spec.name.clone(),
                    reason: "missing from the run's outputs".into(),
                })?;
            from_ort_value(&spec.name, value)
        })
        .collect()
}

/// A view of `t` for ONNX Runtime: no copy of the data.
pub(super) fn to_ort_value(t: &Tensor) -> Result<SessionInputValue<'_>, ort::Error> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    Ok(
        crate::tensor::with_tensor_data!(&t.data, v => SessionInputValue::from(TensorRef::from_array_view((shape, v.as_slice()))?)),
    )
}

fn from_ort_value(name: &str, value: &DynValue) -> Result<Tensor, BackendError> {
    let err = |reason: String| BackendError::Output {
        name: name.to_string(),
        reason,
    };
    let ty = match value.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(err(format!("not a tensor: {other:?}"))),
    };
    macro_rules! extract {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = value
                .try_extract_tensor::<$t>()
                .map_err(|e| err(e.to_string()))?;
            let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
            Tensor {
                shape,
                data: TensorData::$variant(data.to_vec()),
            }
        }};
    }
    Ok(match ty {
        TensorElementType::Bool => extract!(bool, Bool),
        TensorElementType::Uint8 => extract!(u8, U8),
        TensorElementType::Int8 => extract!(i8, I8),
        TensorElementType::Int32 => extract!(i32, I32),
        TensorElementType::Int64 => extract!(i64, I64),
        TensorElementType::Float32 => extract!(f32, F32),
        TensorElementType::Float64 => extract!(f64, F64),
        other => return Err(err(format!("element type {other:?} is not served"))),
    })
}
