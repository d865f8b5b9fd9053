//! Cross-checks what `model.toml` declares against what the ONNX graph says. Pure.

use crate::backend::GraphTensor;
use crate::tensor::TensorSpec;

/// Returns the specs to serve, in graph order: the declared ones checked against the
/// graph, or, when none are declared, the graph's own. `table` is "input" or "output"
/// (for messages); `max_batch_size` decides what the graph's first dimension must be.
pub fn specs(
    declared: &[TensorSpec],
    graph: &[GraphTensor],
    table: &str,
    max_batch_size: usize,
) -> Result<Vec<TensorSpec>, String> {
    let graph_names: Vec<&str> = graph.iter().map(|g| g.name.as_str()).collect();
    for (i, d) in declared.iter().enumerate() {
        if !graph_names.contains(&d.name.as_str()) {
            return Err(format!(
                "field `{table}[{i}].name`: the model has no {table} {:?} (it has: {})",
                d.name,
                graph_names.join(", ")
            ));
        }
    }
    let mut out = Vec::with_capacity(graph.len());
    for g in graph {
        let datatype = g.datatype.ok_or_else(|| {
            format!(
                "the model's {table} {:?} has an element type Convoy does not serve",
                g.name
            )
        })?;
        let batch = g.shape.first().copied();
        match batch {
            None => {
                return Err(format!(
                    "the model's {table} {:?} has no batch dimension (rank 0)",
                    g.name
                ))
            }
            Some(-1) => {}
            Some(1) if max_batch_size == 1 => {}
            Some(n) => {
                return Err(format!(
                    "field `max_batch_size`: the model's {table} {:?} has a fixed first dimension {n}; use a model with a dynamic batch dimension or set max_batch_size = 1",
                    g.name
                ))
            }
        }
        let graph_dims = &g.shape[1..];
        let Some((i, d)) = declared.iter().enumerate().find(|(_, d)| d.name == g.name) else {
            if !declared.is_empty() {
                return Err(format!(
                    "field `{table}`: the model's {table} {:?} is not declared",
                    g.name
                ));
            }
            out.push(TensorSpec {
                name: g.name.clone(),
                datatype,
                dims: graph_dims.to_vec(),
            });
            continue;
        };
        if d.datatype != datatype {
            return Err(format!(
                "field `{table}[{i}].datatype`: the model's {table} {:?} is {datatype}, the config says {}",
                g.name, d.datatype
            ));
        }
        if d.dims.len() != graph_dims.len() {
            return Err(format!(
                "field `{table}[{i}].dims`: the model's {table} {:?} has {} non-batch dimensions {graph_dims:?}, the config declares {:?}",
                g.name,
                graph_dims.len(),
                d.dims
            ));
        }
        let mut dims = Vec::with_capacity(d.dims.len());
        for (&want, &have) in d.dims.iter().zip(graph_dims) {
            dims.push(match (want, have) {
                (w, -1) => w,
                (-1, h) => h,
                (w, h) if w == h => w,
                _ => {
                    return Err(format!(
                        "field `{table}[{i}].dims`: the model's {table} {:?} has dims {graph_dims:?} (after the batch dimension), the config declares {:?}",
                        g.name, d.dims
                    ))
                }
            });
        }
        out.push(TensorSpec {
            name: g.name.clone(),
            datatype,
            dims,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DataType;

    fn g(name: &str, shape: &[i64]) -> GraphTensor {
        GraphTensor {
            name: name.into(),
            datatype: Some(DataType::F32),
            shape: shape.to_vec(),
        }
    }

    fn d(name: &str, dims: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype: DataType::F32,
            dims: dims.to_vec(),
        }
    }

    #[test]
    fn takes_the_graph_when_nothing_is_declared() {
        let got = specs(&[], &[g("x", &[-1, 10])], "input", 64).unwrap();
        assert_eq!(got, vec![d("x", &[10])]);
    }

    #[test]
    fn declared_dims_may_narrow_dynamic_ones() {
        let got = specs(&[d("x", &[-1, 4])], &[g("x", &[-1, -1, -1])], "input", 8).unwrap();
        assert_eq!(got, vec![d("x", &[-1, 4])]);
    }

    #[test]
    fn mismatches_name_the_field() {
        let e = specs(&[d("y", &[10])], &[g("x", &[-1, 10])], "input", 64).unwrap_err();
        assert!(
            e.contains("input[0].name") && e.contains("\"y\"") && e.contains("x"),
            "{e}"
        );
        let e = specs(&[d("x", &[9])], &[g("x", &[-1, 10])], "input", 64).unwrap_err();
        assert!(e.contains("input[0].dims"), "{e}");
        let mut wrong = d("x", &[10]);
        wrong.datatype = DataType::I64;
        let e = specs(&[wrong], &[g("x", &[-1, 10])], "input", 64).unwrap_err();
        assert!(
            e.contains("input[0].datatype") && e.contains("INT64"),
            "{e}"
        );
        let e = specs(&[], &[g("x", &[1, 10])], "input", 64).unwrap_err();
        assert!(e.contains("max_batch_size"), "{e}");
        assert!(specs(&[], &[g("x", &[1, 10])], "input", 1).is_ok());
        let e = specs(
            &[d("x", &[10])],
            &[g("x", &[-1, 10]), g("z", &[-1])],
            "input",
            4,
        )
        .unwrap_err();
        assert!(e.contains("\"z\" is not declared"), "{e}");
    }
}
