//! The IoBinding path of the ONNX Runtime backend (what a CUDA session runs through,
//! with pinned staging memory), run here with plain host staging: batches of changing
//! shapes, FP32 and INT64 inputs, must give exactly what the unbound session gives.

mod common;

use convoy::backend::ort::{OrtBackend, Runtime, Staging};
use convoy::backend::{Backend, Device};
use convoy::repository::config::ModelConfig;
use convoy::repository::session_spec;
use convoy::tensor::{Tensor, TensorData};

use common::*;

fn pair(model: &str) -> (OrtBackend, OrtBackend) {
    let runtime = Runtime::init(&ort_lib()).expect("runtime");
    let config = ModelConfig::load(&shipped_models().join(model)).expect("model.toml");
    let spec = session_spec(&config, 1);
    let (plain, _) = runtime.session(&spec, Device::Cpu).expect("session");
    let (bound, _) = runtime.session(&spec, Device::Cpu).expect("session");
    assert_eq!(plain.staging(), None, "CPU sessions run unbound by default");
    let bound = bound.bind_io(Staging::Cpu).expect("IoBinding on CPU");
    assert_eq!(bound.staging(), Some(Staging::Cpu));
    (plain, bound)
}

#[test]
fn bound_mlp_runs_match_unbound_ones_across_batch_sizes() {
    let (mut plain, mut bound) = pair("mlp");
    // Sizes go up and down, so the binding sees every output shape change.
    for rows in [1usize, 7, 64, 3, 64, 1] {
        let data: Vec<f32> = (0..rows * 10)
            .map(|i| ((i * 37) % 19) as f32 / 7.0 - 1.3)
            .collect();
        let input = Tensor {
            shape: vec![rows, 10],
            data: TensorData::F32(data),
        };
        let want = plain.run(std::slice::from_ref(&input)).expect("plain run");
        let got = bound.run(std::slice::from_ref(&input)).expect("bound run");
        assert_eq!(got, want, "rows = {rows}");
        assert_eq!(got[0].shape, vec![rows, 1]);
    }
}

#[test]
fn bound_minilm_runs_match_unbound_ones_across_lengths() {
    let (mut plain, mut bound) = pair("minilm");
    for (rows, len) in [(1usize, 4usize), (3, 16), (2, 9), (8, 32), (1, 4)] {
        let ids: Vec<i64> = (0..rows * len)
            .map(|i| {
                if i % len == 0 {
                    101
                } else {
                    1000 + (i as i64 * 13) % 5000
                }
            })
            .collect();
        let shape = vec![rows, len];
        let inputs = vec![
            Tensor {
                shape: shape.clone(),
                data: TensorData::I64(ids),
            },
            Tensor {
                shape: shape.clone(),
                data: TensorData::I64(vec![1; rows * len]),
            },
            Tensor {
                shape: shape.clone(),
                data: TensorData::I64(vec![0; rows * len]),
            },
        ];
        let want = plain.run(&inputs).expect("plain run");
        let got = bound.run(&inputs).expect("bound run");
        assert_eq!(got, want, "{rows} x {len}");
        assert_eq!(got[0].shape, vec![rows, len, 384]);
    }
}

#[test]
fn a_bad_batch_fails_as_an_error_and_the_binding_keeps_working() {
    let (_, mut bound) = pair("mlp");
    let wrong = Tensor {
        shape: vec![2, 3],
        data: TensorData::F32(vec![0.0; 6]),
    };
    assert!(bound.run(&[wrong]).is_err());
    let good = Tensor {
        shape: vec![2, 10],
        data: TensorData::F32(vec![0.5; 20]),
    };
    assert_eq!(
        bound.run(&[good]).expect("run after a failure")[0].shape,
        vec![2, 1]
    );
}
