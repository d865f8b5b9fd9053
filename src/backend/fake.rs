//! A deterministic backend for tests, with no ONNX Runtime and no model file: it serves
//! the inputs and outputs the model's config declares (`SessionSpec::declared_*`) and
//! computes every output as a pure function of the batch's inputs ([`fake_outputs`]):
//!
//! * `s[r]` = the sum, as `f64`, of every element of row `r` of every input (`true` = 1);
//! * every element of row `r` of output `k` (0-based, declared order) = `s[r] × (k + 1)`,
//!   converted to the output's declared type (`as` casts: integers truncate toward zero
//!   and saturate; BOOL is `value != 0`);
//! * output `k` has shape `[rows, d1, d2, ...]` from its declared dims, where a dynamic
//!   dim (-1) at position `j` takes the first input's size at position `j` (1 when the
//!   first input has no such dimension): a text model's `[-1, -1, 384]` output answers
//!   `[rows, tokens, 384]`.
//!
//! Zero padding does not change a row's sum, so a ragged batch gives every request what
//! it would get alone (up to the padded dims of the output).
//!
//! Faults and timing are set on the factory, never by global state: a per-batch delay
//! ([`FakeFactory::with_delay`]), failing every batch holding a given input value
//! ([`FakeFactory::failing_on`]), failing to load a named model
//! ([`FakeFactory::failing_to_load`]), and claiming a CUDA device
//! ([`FakeFactory::with_cuda`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    Backend, BackendError, BackendFactory, BackendInfo, BackendSession, Device, GraphTensor,
    SessionSpec,
};
use crate::tensor::{DataType, Tensor, TensorData};

/// Opens [`FakeBackend`] sessions. Cloning shares the record of batch sizes.
#[derive(Clone, Debug, Default)]
pub struct FakeFactory {
    cuda: bool,
    per_batch: Duration,
    per_row: Duration,
    fail_on: Option<f64>,
    fail_load: Vec<String>,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl FakeFactory {
    /// CPU only, no delay, no faults.
    pub fn new() -> FakeFactory {
        FakeFactory::default()
    }

    /// Claims CUDA: `--device auto` resolves to `cuda:0`, `cuda:N` opens on `cuda:N`
    /// (without it, `cuda:N` fails with a device error, as ONNX Runtime's CPU library
    /// does). Nothing runs on a GPU either way.
    pub fn with_cuda(mut self) -> FakeFactory {
        self.cuda = true;
        self
    }

    /// Every batch sleeps `per_batch + per_row × rows` before answering.
    pub fn with_delay(mut self, per_batch: Duration, per_row: Duration) -> FakeFactory {
        self.per_batch = per_batch;
        self.per_row = per_row;
        self
    }

    /// A batch with any input element equal to `value` (compared as `f64`) fails with
    /// [`BackendError::Run`], after its delay; the session keeps working.
    pub fn failing_on(mut self, value: f64) -> FakeFactory {
        self.fail_on = Some(value);
        self
    }

    /// Sessions of the model called `name` fail to open with [`BackendError::Load`].
    pub fn failing_to_load(mut self, name: &str) -> FakeFactory {
        self.fail_load.push(name.to_string());
        self
    }

    /// Rows of every batch run so far by this factory's sessions, in order of running.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batches.lock().expect("fake batch record").clone()
    }
}

impl BackendFactory for FakeFactory {
    fn session(&self, spec: &SessionSpec, device: Device) -> Result<BackendSession, BackendError> {
        if self.fail_load.contains(&spec.name) {
            return Err(BackendError::Load(format!(
                "{}: the fake backend was told to fail loading {:?}",
                spec.model_path.display(),
                spec.name
            )));
        }
        if spec.declared_inputs.is_empty() || spec.declared_outputs.is_empty() {
            return Err(BackendError::Load(format!(
                "{}: the fake backend serves the tensors model.toml declares; declare [[input]] and [[output]]",
                spec.model_path.display()
            )));
        }
        let device = match device {
            Device::Cuda(_) if !self.cuda => {
                return Err(BackendError::Device {
                    device: device.to_string(),
                    reason: "the fake backend was built without CUDA".into(),
                })
            }
            Device::Auto if self.cuda => Device::Cuda(0),
            Device::Auto => Device::Cpu,
            other => other,
        };
        let backend = FakeBackend {
            inputs: spec.declared_inputs.clone(),
            outputs: spec.declared_outputs.clone(),
            per_batch: self.per_batch,
            per_row: self.per_row,
            fail_on: self.fail_on,
            batches: self.batches.clone(),
        };
        Ok(BackendSession {
            backend: Box::new(backend),
            device,
            inputs: spec.declared_inputs.clone(),
            outputs: spec.declared_outputs.clone(),
        })
    }

    fn describe(&self) -> BackendInfo {
        BackendInfo {
            kind: "fake",
            library: String::new(),
            cuda_available: self.cuda,
        }
    }
}

/// One fake session (see the module's documentation for what it computes).
pub struct FakeBackend {
    inputs: Vec<GraphTensor>,
    outputs: Vec<GraphTensor>,
    per_batch: Duration,
    per_row: Duration,
    fail_on: Option<f64>,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Backend for FakeBackend {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
        check_inputs(&self.inputs, inputs)?;
        let rows = inputs[0].rows();
        let delay = self.per_batch + self.per_row * u32::try_from(rows).unwrap_or(u32::MAX);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        self.batches.lock().expect("fake batch record").push(rows);
        if let Some(bad) = self.fail_on {
            if let Some((spec, _)) = self
                .inputs
                .iter()
                .zip(inputs)
                .find(|(_, t)| values(&t.data).any(|v| v == bad))
            {
                return Err(BackendError::Run(format!(
                    "the fake backend fails on {bad}, found in input {:?}",
                    spec.name
                )));
            }
        }
        fake_outputs(inputs, &self.outputs)
    }
}

/// What a session checks before it runs, as ONNX Runtime would refuse it: the number of
/// inputs, their types and ranks, fixed dims, and one row count for all of them.
fn check_inputs(specs: &[GraphTensor], inputs: &[Tensor]) -> Result<(), BackendError> {
    let fail = |reason: String| Err(BackendError::Run(format!("fake backend: {reason}")));
    if inputs.len() != specs.len() {
        return fail(format!(
            "expected {} inputs, got {}",
            specs.len(),
            inputs.len()
        ));
    }
    let rows = inputs[0].rows();
    for (spec, t) in specs.iter().zip(inputs) {
        if spec.datatype != Some(t.data.datatype()) {
            return fail(format!(
                "input {:?}: expected {:?}, got {}",
                spec.name,
                spec.datatype,
                t.data.datatype()
            ));
        }
        let fits = t.shape.len() == spec.shape.len()
            && t.rows() == rows
            && spec
                .shape
                .iter()
                .zip(&t.shape)
                .all(|(&want, &have)| want == -1 || want == have as i64);
        if !fits || crate::tensor::element_count(&t.shape) != Some(t.data.len()) {
            return fail(format!(
                "input {:?}: shape {:?} does not fit {:?} with {rows} rows and {} elements",
                spec.name,
                t.shape,
                spec.shape,
                t.data.len()
            ));
        }
    }
    Ok(())
}

/// Every element of `data` as `f64` (`true` = 1).
fn values(data: &TensorData) -> Box<dyn Iterator<Item = f64> + '_> {
    match data {
        TensorData::Bool(v) => Box::new(v.iter().map(|&b| f64::from(u8::from(b)))),
        TensorData::U8(v) => Box::new(v.iter().map(|&x| f64::from(x))),
        TensorData::I8(v) => Box::new(v.iter().map(|&x| f64::from(x))),
        TensorData::I32(v) => Box::new(v.iter().map(|&x| f64::from(x))),
        TensorData::I64(v) => Box::new(v.iter().map(|&x| x as f64)),
        TensorData::F32(v) => Box::new(v.iter().map(|&x| f64::from(x))),
        TensorData::F64(v) => Box::new(v.iter().copied()),
    }
}

/// The fake's outputs for `inputs` (batch dimension first, all with the same rows), one
/// per entry of `outputs` (declared shapes, batch dimension first). Pure; see the
/// module's documentation. Tests compute their expectations with it.
pub fn fake_outputs(
    inputs: &[Tensor],
    outputs: &[GraphTensor],
) -> Result<Vec<Tensor>, BackendError> {
    let rows = inputs.first().map_or(0, Tensor::rows);
    let mut sums = vec![0.0f64; rows];
    for t in inputs {
        let width = t.row_len();
        for (i, v) in values(&t.data).enumerate() {
            if let Some(sum) = sums.get_mut(i / width.max(1)) {
                *sum += v;
            }
        }
    }
    let first = inputs.first().map_or(&[][..], |t| t.shape.as_slice());
    outputs
        .iter()
        .enumerate()
        .map(|(k, spec)| {
            let datatype = spec.datatype.ok_or_else(|| BackendError::Output {
                name: spec.name.clone(),
                reason: "no element type".into(),
            })?;
            let mut shape = vec![rows];
            for (j, &d) in spec.shape.iter().enumerate().skip(1) {
                shape.push(match d {
                    -1 => first.get(j).copied().unwrap_or(1),
                    d => usize::try_from(d).unwrap_or(1),
                });
            }
            let per_row: usize = shape[1..].iter().product();
            let factor = (k + 1) as f64;
            let elements = sums
                .iter()
                .flat_map(|s| std::iter::repeat_n(s * factor, per_row));
            Ok(Tensor {
                shape,
                data: cast(datatype, elements),
            })
        })
        .collect()
}

fn cast(datatype: DataType, values: impl Iterator<Item = f64>) -> TensorData {
    match datatype {
        DataType::Bool => TensorData::Bool(values.map(|v| v != 0.0).collect()),
        DataType::U8 => TensorData::U8(values.map(|v| v as u8).collect()),
        DataType::I8 => TensorData::I8(values.map(|v| v as i8).collect()),
        DataType::I32 => TensorData::I32(values.map(|v| v as i32).collect()),
        DataType::I64 => TensorData::I64(values.map(|v| v as i64).collect()),
        DataType::F32 => TensorData::F32(values.map(|v| v as f32).collect()),
        DataType::F64 => TensorData::F64(values.collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(name: &str, datatype: DataType, shape: &[i64]) -> GraphTensor {
        GraphTensor {
            name: name.into(),
            datatype: Some(datatype),
            shape: shape.to_vec(),
        }
    }

    fn spec(inputs: Vec<GraphTensor>, outputs: Vec<GraphTensor>) -> SessionSpec {
        SessionSpec {
            name: "m".into(),
            model_path: "/nonexistent/model.onnx".into(),
            intra_op_threads: 0,
            cuda: Default::default(),
            declared_inputs: inputs,
            declared_outputs: outputs,
        }
    }

    #[test]
    fn tabular_outputs_are_row_sums_times_output_number() {
        let spec = spec(
            vec![declared("x", DataType::F32, &[-1, 3])],
            vec![
                declared("label", DataType::I64, &[-1]),
                declared("y", DataType::F32, &[-1, 2]),
            ],
        );
        let factory = FakeFactory::new();
        let mut s = factory.session(&spec, Device::Auto).unwrap();
        assert_eq!(s.device, Device::Cpu);
        assert_eq!(s.inputs, spec.declared_inputs);
        assert_eq!(s.outputs, spec.declared_outputs);
        let x = Tensor {
            shape: vec![2, 3],
            data: TensorData::F32(vec![1.0, 2.0, 3.5, -1.0, 0.0, 0.25]),
        };
        let out = s.backend.run(std::slice::from_ref(&x)).unwrap();
        assert_eq!(out[0].shape, vec![2]);
        // 6.5 and -0.75, truncated toward zero.
        assert_eq!(out[0].data, TensorData::I64(vec![6, 0]));
        assert_eq!(out[1].shape, vec![2, 2]);
        assert_eq!(out[1].data, TensorData::F32(vec![13.0, 13.0, -1.5, -1.5]));
        // Deterministic: the same batch, the same answer; and it was recorded.
        assert_eq!(s.backend.run(&[x]).unwrap(), out);
        assert_eq!(factory.batch_sizes(), vec![2, 2]);
    }

    #[test]
    fn text_outputs_take_the_token_dimension_from_the_first_input() {
        let ids = |n: &str| declared(n, DataType::I64, &[-1, -1]);
        let spec = spec(
            vec![ids("input_ids"), ids("attention_mask")],
            vec![declared("hidden", DataType::F32, &[-1, -1, 4])],
        );
        let mut s = FakeFactory::new().session(&spec, Device::Cpu).unwrap();
        let tokens = |v: Vec<i64>| Tensor {
            shape: vec![2, 3],
            data: TensorData::I64(v),
        };
        let out = s
            .backend
            .run(&[
                tokens(vec![101, 7, 0, 101, 0, 0]),
                tokens(vec![1, 1, 0, 1, 0, 0]),
            ])
            .unwrap();
        assert_eq!(out[0].shape, vec![2, 3, 4]);
        let TensorData::F32(v) = &out[0].data else {
            panic!("FP32 expected")
        };
        assert!(v[..12].iter().all(|&e| e == 110.0), "{v:?}");
        assert!(v[12..].iter().all(|&e| e == 102.0), "{v:?}");
    }

    #[test]
    fn faults_and_devices_are_the_factorys_settings() {
        let spec = spec(
            vec![declared("x", DataType::F32, &[-1, 2])],
            vec![declared("y", DataType::F32, &[-1, 1])],
        );
        let x = |v: f32| Tensor {
            shape: vec![1, 2],
            data: TensorData::F32(vec![v, 0.0]),
        };
        let factory = FakeFactory::new().failing_on(-7.0).failing_to_load("other");
        let mut s = factory.session(&spec, Device::Cpu).unwrap();
        assert!(matches!(
            s.backend.run(&[x(-7.0)]),
            Err(BackendError::Run(_))
        ));
        assert_eq!(
            s.backend.run(&[x(2.0)]).unwrap()[0].data,
            TensorData::F32(vec![2.0])
        );
        let wrong = Tensor {
            shape: vec![1, 3],
            data: TensorData::F32(vec![0.0; 3]),
        };
        assert!(matches!(s.backend.run(&[wrong]), Err(BackendError::Run(_))));
        let other = SessionSpec {
            name: "other".into(),
            ..spec.clone()
        };
        assert!(matches!(
            factory.session(&other, Device::Cpu).err(),
            Some(BackendError::Load(_))
        ));
        assert!(matches!(
            factory.session(&spec, Device::Cuda(0)).err(),
            Some(BackendError::Device { .. })
        ));
        let gpu = FakeFactory::new().with_cuda();
        assert_eq!(
            gpu.session(&spec, Device::Auto).unwrap().device,
            Device::Cuda(0)
        );
        assert!(gpu.describe().cuda_available);
        let undeclared = SessionSpec {
            declared_outputs: vec![],
            ..spec
        };
        assert!(matches!(
            factory.session(&undeclared, Device::Cpu).err(),
            Some(BackendError::Load(_))
        ));
    }
}
