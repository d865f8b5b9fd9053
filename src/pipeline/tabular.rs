//! Tabular pre/post-processing: named features in any order → the model's standardised
//! row, and the model's standardised output → the target's units. Pure.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::PipelineError;

/// `[pipeline.tabular]`: feature names in the model's column order, their statistics,
/// and the target's.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TabularParams {
    pub features: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    #[serde(default)]
    pub target_mean: f32,
    #[serde(default = "one")]
    pub target_std: f32,
    /// The graph output holding the standardised prediction [batch, 1].
    pub output: String,
}

fn one() -> f32 {
    1.0
}

impl TabularParams {
    /// Checks lengths and values; `Err` names the field.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.features.len();
        if n == 0 {
            return Err("pipeline.tabular.features: expected at least one feature name".into());
        }
        if self.mean.len() != n || self.std.len() != n {
            return Err(format!(
                "pipeline.tabular: {n} features need {n} `mean` and `std` values, got {} and {}",
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some(i) = self.std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(format!(
                "pipeline.tabular.std[{i}]: expected a positive number, got {}",
                self.std[i]
            ));
        }
        if !(self.target_std.is_finite() && self.target_std > 0.0 && self.target_mean.is_finite()) {
            return Err(
                "pipeline.tabular: `target_std` must be positive and `target_mean` finite".into(),
            );
        }
        Ok(())
    }

    /// Raw rows in the model's column order, row-major, from JSON objects of named
    /// features. Every feature must be present, a number within the FP32 range; unknown
    /// names are refused (a typo would otherwise silently drop a feature).
    pub fn rows(
        &self,
        instances: &[Map<String, Value>],
        field: &str,
    ) -> Result<Vec<f32>, PipelineError> {
        let mut out = Vec::with_capacity(instances.len() * self.features.len());
        for (i, obj) in instances.iter().enumerate() {
            if let Some(unknown) = obj.keys().find(|k| !self.features.contains(k)) {
                return Err(PipelineError::Input(format!(
                    "{field}[{i}]: unknown feature {unknown:?} (features: {})",
                    self.features.join(", ")
                )));
            }
            for name in &self.features {
                let v = obj.get(name).ok_or_else(|| {
                    PipelineError::Input(format!("{field}[{i}]: feature {name:?} is missing"))
                })?;
                let x = v.as_f64().map(|x| x as f32).filter(|x| x.is_finite());
                out.push(x.ok_or_else(|| {
                    PipelineError::Input(format!(
                        "{field}[{i}].{name}: expected a number within the FP32 range, got {v}"
                    ))
                })?);
            }
        }
        Ok(out)
    }

    /// Standardises raw rows already in column order (the v2 route's FP32 tensor).
    pub fn standardize(&self, raw: &mut [f32]) {
        let n = self.features.len();
        for (j, x) in raw.iter_mut().enumerate() {
            let k = j % n;
            *x = (*x - self.mean[k]) / self.std[k];
        }
    }

    /// Back to the target's units.
    pub fn denormalize(&self, y: f32) -> f32 {
        y * self.target_std + self.target_mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> TabularParams {
        TabularParams {
            features: vec!["age".into(), "bmi".into()],
            mean: vec![50.0, 25.0],
            std: vec![10.0, 5.0],
            target_mean: 150.0,
            target_std: 75.0,
            output: "output".into(),
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn named_features_in_any_order_become_standardised_rows() {
        let mut rows = params()
            .rows(&[obj(json!({"bmi": 30, "age": 40}))], "instances")
            .unwrap();
        assert_eq!(rows, vec![40.0, 30.0]);
        params().standardize(&mut rows);
        assert_eq!(rows, vec![-1.0, 1.0]);
        assert_eq!(params().denormalize(-1.0), 75.0);
        let mut raw = vec![40.0, 30.0, 60.0, 20.0];
        params().standardize(&mut raw);
        assert_eq!(raw, vec![-1.0, 1.0, 1.0, -1.0]);
    }

    #[test]
    fn missing_unknown_and_non_numeric_features_are_named() {
        let p = params();
        let e = |v: Value| p.rows(&[obj(v)], "instances").unwrap_err().to_string();
        assert!(e(json!({"age": 1})).contains("instances[0]: feature \"bmi\" is missing"));
        assert!(e(json!({"age": 1, "bmi": 2, "agee": 3})).contains("unknown feature \"agee\""));
        assert!(e(json!({"age": "old", "bmi": 2})).contains("instances[0].age: expected a number"));
        assert!(e(json!({"age": 1e308, "bmi": 2})).contains("within the FP32 range"));
    }

    #[test]
    fn params_are_validated() {
        let mut p = params();
        p.std[1] = 0.0;
        assert!(p.validate().unwrap_err().contains("std[1]"));
        let mut p = params();
        p.mean.pop();
        assert!(p.validate().unwrap_err().contains("2 features need 2"));
    }
}
