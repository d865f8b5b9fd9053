//! What a model serves: the tensors its doors show (v2 metadata, Triton's `/config`) and
//! validate requests against. A plain model serves its graph's tensors; a pipeline model
//! its stages' (BYTES in for text and images, FP32 raw features for tabular; FP32 out).

use super::config::ModelConfig;
use crate::pipeline::Pipeline;
use crate::tensor::{DataType, ServedSpec, ServedType};

/// A model's served inputs and outputs, in the order requests and responses use.
#[derive(Clone, Debug, PartialEq)]
pub struct Served {
    pub inputs: Vec<ServedSpec>,
    pub outputs: Vec<ServedSpec>,
}

/// The served tensors of a model of `config` with `pipeline`: computed once, at load.
pub fn served(config: &ModelConfig, pipeline: Option<&Pipeline>) -> Served {
    match pipeline {
        None => Served {
            inputs: config.inputs.iter().map(ServedSpec::from).collect(),
            outputs: config.outputs.iter().map(ServedSpec::from).collect(),
        },
        Some(p) => of_pipeline(p),
    }
}

fn of_pipeline(p: &Pipeline) -> Served {
    let sig = p.signature();
    let spec = |name: &str, datatype, dims| ServedSpec {
        name: name.to_string(),
        datatype,
        dims,
    };
    let input = match sig.input_width {
        Some(w) => spec(
            sig.input,
            ServedType::Numeric(DataType::F32),
            vec![w as i64],
        ),
        None => spec(sig.input, ServedType::Bytes, vec![]),
    };
    let output = spec(
        sig.output,
        ServedType::Numeric(DataType::F32),
        vec![sig.width as i64],
    );
    Served {
        inputs: vec![input],
        outputs: vec![output],
    }
}
