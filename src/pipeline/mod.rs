//! Pre- and post-processing stages declared per model in `model.toml`'s `[pipeline]`:
//! text → embeddings (tokenize, mean-pool + L2), image → classes (decode, resize,
//! normalise, softmax + top-k with labels). Each stage is pure and unit-tested; they run
//! on a bounded CPU pool ([`pool`]), never on a device worker nor the async runtime.

pub mod image;
pub mod pool;
pub mod post;
pub mod tabular;
pub mod text;

use std::path::Path;

use serde::Deserialize;

use self::image::ImageParams;
use self::tabular::TabularParams;
use self::text::TextStage;
use crate::tensor::DataType;
use crate::tensor::TensorSpec;

/// Errors of the stages. Input errors name the request field.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum PipelineError {
    /// The input cannot be processed (not an image, too many tokens, ...): 422.
    #[error("{0}")]
    Input(String),
    /// Over a configured size limit: 413.
    #[error("{0}")]
    TooLarge(String),
}

/// `[pipeline]` as written in model.toml.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// "text" or "image".
    pub pre: String,
    /// "mean_pool" (text → embedding) or "classify" (logits/probabilities → top-k).
    pub post: String,
    pub text: Option<TextParams>,
    pub image: Option<ImageParams>,
    pub classify: Option<ClassifyParams>,
    pub tabular: Option<TabularParams>,
}

/// `[pipeline.text]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextParams {
    /// tokenizer.json, relative to the model's folder.
    pub tokenizer: String,
    /// The model's maximum sequence length, in tokens.
    pub max_tokens: usize,
    /// Whether over-long texts are truncated when the request does not say.
    #[serde(default = "yes")]
    pub truncate: bool,
    /// Batch texts by length bucket (16, 32, 64, ... tokens) so short texts do not pay
    /// for long ones; false: any texts share a batch, padded to the longest.
    #[serde(default = "yes")]
    pub bucketing: bool,
    /// Longest text accepted, in bytes (413 beyond): bounds the tokenizer's work per text
    /// even when truncation would cut it to `max_tokens` afterwards.
    #[serde(default = "max_text_bytes")]
    pub max_text_bytes: usize,
    #[serde(default = "ids_name")]
    pub input_ids: String,
    #[serde(default = "mask_name")]
    pub attention_mask: String,
    /// Absent for models without token type ids.
    pub token_type_ids: Option<String>,
    /// The graph output holding per-token states [batch, tokens, dim].
    #[serde(default = "hidden_name")]
    pub output: String,
}

/// `[pipeline.classify]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassifyParams {
    /// labels.txt (one per line, in class order), relative to the model's folder.
    pub labels: String,
    /// The graph output holding scores [batch, classes].
    pub output: String,
    /// Apply softmax (the output is logits) or not (already probabilities).
    #[serde(default = "yes")]
    pub softmax: bool,
    #[serde(default = "five")]
    pub top_k: usize,
}

fn yes() -> bool {
    true
}
fn five() -> usize {
    5
}
fn max_text_bytes() -> usize {
    text::DEFAULT_MAX_TEXT_BYTES
}

fn ids_name() -> String {
    "input_ids".into()
}
fn mask_name() -> String {
    "attention_mask".into()
}
fn hidden_name() -> String {
    "last_hidden_state".into()
}

/// A model's stages, loaded and checked against its graph.
pub enum Pipeline {
    /// Texts in, one embedding per text out.
    Embed {
        text: Box<TextStage>,
        /// Positions of ids / mask / type ids among the model's inputs (graph order).
        ids: usize,
        mask: usize,
        type_ids: Option<usize>,
        /// Position of the hidden-state output, and its width.
        output: usize,
        dim: usize,
        truncate_default: bool,
        bucketing: bool,
    },
    /// Named raw features in, the target in its own units out.
    Tabular {
        params: TabularParams,
        output: usize,
    },
    /// Images in, top-k labelled classes out.
    Classify {
        image: ImageParams,
        output: usize,
        labels: Vec<String>,
        softmax: bool,
        top_k: usize,
    },
}

fn position(specs: &[TensorSpec], name: &str, field: &str, what: &str) -> Result<usize, String> {
    specs.iter().position(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        format!(
            "field `{field}`: the model has no {what} {name:?} (it has: {})",
            names.join(", ")
        )
    })
}

impl Pipeline {
    /// Checks the kinds and parameters (no file is read): errors name the field.
    pub fn validate(c: &PipelineConfig) -> Result<(), String> {
        match (c.pre.as_str(), c.post.as_str()) {
            ("text", "mean_pool") => {
                let t = c.text.as_ref().ok_or("field `pipeline.text`: required when pre = \"text\"")?;
                if t.max_tokens == 0 {
                    return Err("field `pipeline.text.max_tokens`: expected at least 1, got 0".into());
                }
                if t.max_text_bytes == 0 {
                    return Err("field `pipeline.text.max_text_bytes`: expected at least 1, got 0".into());
                }
                Ok(())
            }
            ("image", "classify") => {
                let i = c.image.as_ref().ok_or("field `pipeline.image`: required when pre = \"image\"")?;
                i.validate().map_err(|e| format!("field `{e}"))?;
                let k = c.classify.as_ref().ok_or("field `pipeline.classify`: required when post = \"classify\"")?;
                if k.top_k == 0 {
                    return Err("field `pipeline.classify.top_k`: expected at least 1, got 0".into());
                }
                Ok(())
            }
            ("tabular", "denormalize") => {
                let t = c.tabular.as_ref().ok_or("field `pipeline.tabular`: required when pre = \"tabular\"")?;
                t.validate().map_err(|e| format!("field `{e}"))
            }
            ("text" | "image" | "tabular", other) => Err(format!(
                "field `pipeline.post`: expected \"mean_pool\" after pre = \"text\", \"classify\" after \"image\", \"denormalize\" after \"tabular\"; got {other:?}"
            )),
            (other, _) => Err(format!("field `pipeline.pre`: expected \"text\", \"image\" or \"tabular\", got {other:?}")),
        }
    }

    /// Loads the stage's files from `dir` and binds it to the model's inputs/outputs.
    pub fn load(
        c: &PipelineConfig,
        dir: &Path,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
    ) -> Result<Pipeline, String> {
        Pipeline::validate(c)?;
        match c.pre.as_str() {
            "tabular" => Pipeline::load_tabular(c, inputs, outputs),
            "text" => Pipeline::load_text(c, dir, inputs, outputs),
            _ => Pipeline::load_image(c, dir, inputs, outputs),
        }
    }

    fn load_tabular(
        c: &PipelineConfig,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
    ) -> Result<Pipeline, String> {
        let params = c.tabular.clone().expect("validated");
        if inputs.len() != 1
            || inputs[0].datatype != DataType::F32
            || inputs[0].dims != [params.features.len() as i64]
        {
            return Err(format!(
                "field `pipeline.tabular.features`: {} features, but the model takes {:?}",
                params.features.len(),
                inputs
                    .iter()
                    .map(|i| (&i.name, &i.dims))
                    .collect::<Vec<_>>()
            ));
        }
        let output = position(outputs, &params.output, "pipeline.tabular.output", "output")?;
        if outputs[output].datatype != DataType::F32 || outputs[output].dims != [1] {
            return Err(format!(
                "field `pipeline.tabular.output`: output {:?} must be FP32 [batch, 1]",
                params.output
            ));
        }
        Ok(Pipeline::Tabular { params, output })
    }

    fn load_text(
        c: &PipelineConfig,
        dir: &Path,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
    ) -> Result<Pipeline, String> {
        let t = c.text.as_ref().expect("validated");
        let text = TextStage::load(&dir.join(&t.tokenizer), t.max_tokens)
            .map_err(|e| format!("field `pipeline.text.tokenizer`: {e}"))?
            .with_max_text_bytes(t.max_text_bytes);
        let ids = position(inputs, &t.input_ids, "pipeline.text.input_ids", "input")?;
        let mask = position(
            inputs,
            &t.attention_mask,
            "pipeline.text.attention_mask",
            "input",
        )?;
        let type_ids = match &t.token_type_ids {
            Some(n) => Some(position(
                inputs,
                n,
                "pipeline.text.token_type_ids",
                "input",
            )?),
            None => None,
        };
        let expected = 2 + type_ids.is_some() as usize;
        if inputs.len() != expected {
            return Err(format!(
                "field `pipeline.text`: the model has {} inputs, the text stage feeds {expected}",
                inputs.len()
            ));
        }
        for &k in [ids, mask].iter().chain(type_ids.iter()) {
            if inputs[k].datatype != DataType::I64 || inputs[k].dims.len() != 1 {
                return Err(format!(
                    "field `pipeline.text`: input {:?} must be INT64 [batch, tokens]",
                    inputs[k].name
                ));
            }
        }
        let output = position(outputs, &t.output, "pipeline.text.output", "output")?;
        let o = &outputs[output];
        let dim = match o.dims.as_slice() {
            [_, d] if *d > 0 && o.datatype == DataType::F32 => *d as usize,
            _ => {
                return Err(format!(
                    "field `pipeline.text.output`: output {:?} must be FP32 [batch, tokens, dim] with a fixed dim, got {} {:?}",
                    o.name, o.datatype, o.dims
                ))
            }
        };
        Ok(Pipeline::Embed {
            text: Box::new(text),
            ids,
            mask,
            type_ids,
            output,
            dim,
            truncate_default: t.truncate,
            bucketing: t.bucketing,
        })
    }

    fn load_image(
        c: &PipelineConfig,
        dir: &Path,
        inputs: &[TensorSpec],
        outputs: &[TensorSpec],
    ) -> Result<Pipeline, String> {
        let image = c.image.clone().expect("validated");
        let k = c.classify.as_ref().expect("validated");
        let path = dir.join(&k.labels);
        let labels: Vec<String> = std::fs::read_to_string(&path)
            .map_err(|e| format!("field `pipeline.classify.labels`: {}: {e}", path.display()))?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        if inputs.len() != 1 || inputs[0].datatype != DataType::F32 {
            return Err(
                "field `pipeline.image`: the model must have exactly one FP32 input".into(),
            );
        }
        let want = image.output_len() as i64;
        let have: i64 = inputs[0].dims.iter().product();
        if want == 0 || have != want {
            return Err(format!(
                "field `pipeline.image`: the stage yields {want} values per image, input {:?} takes {:?}",
                inputs[0].name, inputs[0].dims
            ));
        }
        let output = position(outputs, &k.output, "pipeline.classify.output", "output")?;
        let classes = outputs[output].dims.iter().product::<i64>();
        if classes != labels.len() as i64 {
            return Err(format!(
                "field `pipeline.classify.labels`: {} labels for {classes} classes of output {:?}",
                labels.len(),
                k.output
            ));
        }
        Ok(Pipeline::Classify {
            image,
            output,
            labels,
            softmax: k.softmax,
            top_k: k.top_k,
        })
    }

    /// Whether requests of different non-batch shapes share batches, padded with zeros
    /// to the batch's longest (text: yes, every text has its own length).
    pub fn ragged(&self) -> bool {
        matches!(self, Pipeline::Embed { .. })
    }
}

/// What a pipeline model looks like from outside (v2 metadata and infer): one input
/// (BYTES for text and images; FP32 raw features, `input_width` per row, for tabular),
/// one FP32 output of `width` values per element.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    pub input: &'static str,
    pub input_datatype: &'static str,
    pub input_width: Option<usize>,
    pub output: &'static str,
    pub width: usize,
}

impl Pipeline {
    pub fn signature(&self) -> Signature {
        match self {
            Pipeline::Embed { dim, .. } => Signature {
                input: "text",
                input_datatype: "BYTES",
                input_width: None,
                output: "embedding",
                width: *dim,
            },
            Pipeline::Tabular { params, .. } => Signature {
                input: "features",
                input_datatype: "FP32",
                input_width: Some(params.features.len()),
                output: "prediction",
                width: 1,
            },
            Pipeline::Classify { labels, .. } => Signature {
                input: "image",
                input_datatype: "BYTES",
                input_width: None,
                output: "probabilities",
                width: labels.len(),
            },
        }
    }
}
