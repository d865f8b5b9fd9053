//! The rules every door's requests meet, decided once: inputs against the model's served
//! tensors, and the outputs asked for. Pure: every rule names the field, what was
//! expected and what was given.

use crate::error::{Error, Result};
use crate::tensor::{element_count, Payload, ServedSpec, ServedType, TensorData};

use super::request::{Input, OutputRequest};

/// `[-1, d1, d2]`: a spec's dims with the batch dimension first.
pub fn dims_text(dims: &[i64]) -> String {
    let all: Vec<String> = std::iter::once("-1".to_string())
        .chain(dims.iter().map(|d| d.to_string()))
        .collect();
    format!("[{}]", all.join(", "))
}

/// The inputs in the order the model serves them, each checked against its spec, and
/// the batch size they share. `max_rows`: the most rows one request may carry (plain
/// models: their max batch size; pipelines cut bigger requests into batches).
pub fn inputs(
    model: &str,
    given: Vec<Input>,
    served: &[ServedSpec],
    max_rows: Option<usize>,
) -> Result<(Vec<Input>, usize)> {
    let mut slots: Vec<Option<Input>> = served.iter().map(|_| None).collect();
    let mut rows: Option<(usize, usize)> = None;
    for (i, input) in given.into_iter().enumerate() {
        let field = format!("inputs[{i}]");
        let Some(k) = served.iter().position(|s| s.name == input.name) else {
            return Err(Error::unprocessable(format!(
                "{field}.name: model {model:?} has no input {:?} (its inputs: {})",
                input.name,
                names(served)
            )));
        };
        if slots[k].is_some() {
            return Err(Error::unprocessable(format!(
                "{field}.name: input {:?} is given twice",
                input.name
            )));
        }
        let spec = &served[k];
        check_input(&field, spec, &input, max_rows)?;
        let n = input.shape[0];
        match rows {
            Some((r, first)) if r != n => {
                return Err(Error::unprocessable(format!(
                    "{field}.shape: every input must have the same batch size; {:?} has {r} rows, {:?} has {n}",
                    served[first].name, spec.name
                )))
            }
            None => rows = Some((n, k)),
            _ => {}
        }
        slots[k] = Some(input);
    }
    let mut ordered = Vec::with_capacity(served.len());
    for (spec, slot) in served.iter().zip(slots) {
        ordered.push(slot.ok_or_else(|| {
            Error::unprocessable(format!(
                "inputs: model {model:?} needs input {:?} ({} {}), which the request lacks",
                spec.name,
                spec.datatype,
                dims_text(&spec.dims)
            ))
        })?);
    }
    Ok((ordered, rows.map_or(0, |(r, _)| r)))
}

fn names(specs: &[ServedSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One input against its spec: datatype, shape, batch size, element count, finite values.
fn check_input(
    field: &str,
    spec: &ServedSpec,
    input: &Input,
    max_rows: Option<usize>,
) -> Result<()> {
    let given = input.payload.served_type();
    if given != spec.datatype {
        return Err(Error::unprocessable(format!(
            "{field}.datatype: input {:?} expects {}, got {:?}",
            spec.name,
            spec.datatype,
            given.as_str()
        )));
    }
    check_shape(field, spec, &input.shape, max_rows)?;
    let count = element_count(&input.shape).ok_or_else(|| {
        Error::unprocessable(format!(
            "{field}.shape: {:?} has too many elements",
            input.shape
        ))
    })?;
    if count != input.payload.len() {
        return Err(Error::unprocessable(format!(
            "{field}.data: the shape {:?} needs {count} values, got {}",
            input.shape,
            input.payload.len()
        )));
    }
    refuse_non_finite(field, &input.payload)
}

/// The shape, batch first, against the spec. A BYTES input of no further dimension also
/// takes `[N, 1]` (one string per row, as Triton's clients often send it).
fn check_shape(
    field: &str,
    spec: &ServedSpec,
    shape: &[usize],
    max_rows: Option<usize>,
) -> Result<()> {
    let bytes_column = spec.datatype == ServedType::Bytes && spec.dims.is_empty();
    let inner: &[usize] = match shape {
        [_, 1] if bytes_column => &[],
        [_, rest @ ..] => rest,
        [] => &[],
    };
    if shape.is_empty() || inner.len() != spec.dims.len() {
        return Err(Error::unprocessable(format!(
            "{field}.shape: input {:?} expects {} dimensions {} (batch first), got {shape:?}",
            spec.name,
            spec.dims.len() + 1,
            dims_text(&spec.dims)
        )));
    }
    for (j, (&want, &got)) in spec.dims.iter().zip(inner).enumerate() {
        if want != -1 && i64::try_from(got).ok() != Some(want) {
            return Err(Error::unprocessable(format!(
                "{field}.shape: input {:?} expects {} (batch first), got {shape:?} (dimension {} should be {want})",
                spec.name,
                dims_text(&spec.dims),
                j + 1
            )));
        }
        if got == 0 {
            return Err(Error::unprocessable(format!(
                "{field}.shape: dimension {} is 0 in {shape:?}; empty tensors are not served",
                j + 1
            )));
        }
    }
    let rows = shape[0];
    let max = max_rows.unwrap_or(usize::MAX);
    if rows == 0 || rows > max {
        let bound = max_rows.map_or("1 or more".to_string(), |m| {
            format!("in 1..={m} (the model's max_batch_size)")
        });
        return Err(Error::unprocessable(format!(
            "{field}.shape: the batch dimension must be {bound}, got {rows}"
        )));
    }
    Ok(())
}

/// NaN and ±Inf are refused with 422 naming the first such element: a model fed NaN
/// answers NaN, or worse poisons a whole batch's reductions.
fn refuse_non_finite(field: &str, payload: &Payload) -> Result<()> {
    let first_bad = match payload {
        Payload::Numeric(TensorData::F32(v)) => v.iter().position(|x| !x.is_finite()),
        Payload::Numeric(TensorData::F64(v)) => v.iter().position(|x| !x.is_finite()),
        _ => None,
    };
    match first_bad {
        Some(i) => Err(Error::unprocessable(format!(
            "{field}: element {i} is NaN or infinite; only finite numbers are accepted"
        ))),
        None => Ok(()),
    }
}

/// The outputs to return: (index among the served outputs, binary?) in the order asked.
/// An unknown name is refused before anything is queued, so it costs no device time.
pub fn outputs(
    model: &str,
    asked: Option<&[OutputRequest]>,
    served: &[ServedSpec],
    binary_default: bool,
) -> Result<Vec<(usize, bool)>> {
    let Some(list) = asked else {
        return Ok((0..served.len()).map(|k| (k, binary_default)).collect());
    };
    list.iter()
        .enumerate()
        .map(|(i, o)| {
            let k = served
                .iter()
                .position(|s| s.name == o.name)
                .ok_or_else(|| {
                    Error::unprocessable(format!(
                        "outputs[{i}].name: model {model:?} has no output {:?} (its outputs: {})",
                        o.name,
                        names(served)
                    ))
                })?;
            Ok((k, o.binary.unwrap_or(binary_default)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::tensor::DataType;

    fn specs() -> Vec<ServedSpec> {
        vec![
            ServedSpec {
                name: "x".into(),
                datatype: ServedType::Numeric(DataType::F32),
                dims: vec![2],
            },
            ServedSpec {
                name: "mask".into(),
                datatype: ServedType::Numeric(DataType::I64),
                dims: vec![-1],
            },
        ]
    }

    fn f32s(shape: &[usize], v: Vec<f32>) -> Input {
        Input::new("x", shape.to_vec(), Payload::Numeric(TensorData::F32(v)))
    }

    fn mask(shape: &[usize]) -> Input {
        let n = shape.iter().product();
        Input::new(
            "mask",
            shape.to_vec(),
            Payload::Numeric(TensorData::I64(vec![1; n])),
        )
    }

    fn check(inputs: Vec<Input>) -> Result<(Vec<Input>, usize)> {
        super::inputs("m", inputs, &specs(), Some(4))
    }

    #[test]
    fn inputs_come_back_in_served_order() {
        let (ordered, rows) = check(vec![mask(&[2, 3]), f32s(&[2, 2], vec![1.0; 4])]).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(ordered[0].name, "x");
        assert_eq!(ordered[1].shape, vec![2, 3]);
    }

    #[test]
    fn each_rule_names_the_field() {
        let cases: Vec<(Vec<Input>, &str)> = vec![
            (vec![f32s(&[1, 2], vec![1.0; 2])], "needs input \"mask\""),
            (
                vec![f32s(&[1, 3], vec![1.0; 3]), mask(&[1, 1])],
                "dimension 1 should be 2",
            ),
            (
                vec![f32s(&[5, 2], vec![1.0; 10]), mask(&[5, 1])],
                "in 1..=4",
            ),
            (
                vec![f32s(&[1, 2], vec![1.0; 3]), mask(&[1, 1])],
                "needs 2 values, got 3",
            ),
            (
                vec![f32s(&[1, 2], vec![1.0, f32::NAN]), mask(&[1, 1])],
                "element 1 is NaN",
            ),
            (
                vec![f32s(&[2, 2], vec![1.0; 4]), mask(&[1, 1])],
                "same batch size",
            ),
            (vec![mask(&[1, 1]), mask(&[1, 1])], "given twice"),
            (
                vec![f32s(&[1, 2, 1], vec![1.0; 2]), mask(&[1, 1])],
                "expects 2 dimensions",
            ),
        ];
        for (inputs, want) in cases {
            let e = check(inputs).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unprocessable, "{e}");
            assert!(e.message.contains(want), "{e} lacks {want:?}");
        }
        let mut wrong_type = mask(&[1, 2]);
        wrong_type.name = "x".into();
        let e = check(vec![wrong_type, mask(&[1, 1])]).unwrap_err();
        assert!(e.message.contains("expects FP32, got \"INT64\""), "{e}");
    }

    #[test]
    fn a_bytes_column_takes_n_or_n_by_1() {
        let served = [ServedSpec {
            name: "text".into(),
            datatype: ServedType::Bytes,
            dims: vec![],
        }];
        let text = |shape: &[usize]| {
            let two = vec![bytes::Bytes::from_static(b"a"); 2];
            Input::new("text", shape.to_vec(), Payload::Bytes(two))
        };
        assert!(super::inputs("m", vec![text(&[2])], &served, None).is_ok());
        assert!(super::inputs("m", vec![text(&[2, 1])], &served, None).is_ok());
        assert!(super::inputs("m", vec![text(&[1, 2])], &served, None).is_err());
    }

    #[test]
    fn outputs_are_resolved_by_name_with_their_encoding() {
        let served = specs();
        assert_eq!(
            outputs("m", None, &served, true).unwrap(),
            vec![(0, true), (1, true)]
        );
        let asked = [
            OutputRequest {
                name: "mask".into(),
                binary: Some(true),
            },
            OutputRequest {
                name: "x".into(),
                binary: None,
            },
        ];
        assert_eq!(
            outputs("m", Some(&asked), &served, false).unwrap(),
            vec![(1, true), (0, false)]
        );
        let unknown = [OutputRequest {
            name: "y".into(),
            binary: None,
        }];
        let e = outputs("m", Some(&unknown), &served, false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unprocessable);
        assert!(e.message.contains("outputs[0].name"), "{e}");
    }
}
