//! Text pre-processing: the HF tokenizer, padded to the longest in the batch (by the
//! batcher), truncated to the model's maximum or refused, per request.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use super::PipelineError;

/// One tokenized text: the three BERT inputs, unpadded.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub type_ids: Vec<i64>,
}

/// Default longest text, in bytes: 64 KiB is ~15,000 tokens of English, far beyond any
/// embedding model's window, yet tokenizing it costs milliseconds, not seconds.
pub const DEFAULT_MAX_TEXT_BYTES: usize = 64 * 1024;

/// A loaded tokenizer and the model's maximum length.
pub struct TextStage {
    /// Without truncation: measures, so an over-long text can be refused with its length.
    exact: Tokenizer,
    /// With truncation to `max_tokens`.
    truncating: Tokenizer,
    pub max_tokens: usize,
    /// Longer texts are refused (TooLarge) before they are tokenized.
    pub max_text_bytes: usize,
}

impl TextStage {
    /// Loads `tokenizer.json`. Its own padding settings are dropped: the batcher pads to
    /// the longest text in each batch (a fixed 128 would cost every short text ~6×).
    pub fn load(path: &Path, max_tokens: usize) -> Result<TextStage, String> {
        let mut exact =
            Tokenizer::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        exact.with_padding(None);
        exact
            .with_truncation(None)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut truncating = exact.clone();
        truncating
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TextStage {
            exact,
            truncating,
            max_tokens,
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
        })
    }

    /// Sets the longest text accepted, in bytes.
    pub fn with_max_text_bytes(mut self, n: usize) -> TextStage {
        self.max_text_bytes = n;
        self
    }

    /// Tokenizes `texts`; `field` names the request field for errors (`input[3]`).
    /// Over-long texts are truncated when `truncate`, refused otherwise.
    pub fn encode(
        &self,
        texts: &[String],
        truncate: bool,
        field: &str,
    ) -> Result<Vec<Encoded>, PipelineError> {
        let tokenizer = if truncate {
            &self.truncating
        } else {
            &self.exact
        };
        let mut out = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            if text.trim().is_empty() {
                return Err(PipelineError::Input(format!(
                    "{field}[{i}]: the text is empty; nothing to embed"
                )));
            }
            if text.len() > self.max_text_bytes {
                return Err(PipelineError::TooLarge(format!(
                    "{field}[{i}]: text of {} bytes exceeds the limit of {} bytes",
                    text.len(),
                    self.max_text_bytes
                )));
            }
            let enc = tokenizer
                .encode(text.as_str(), true)
                .map_err(|e| PipelineError::Input(format!("{field}[{i}]: cannot tokenize: {e}")))?;
            let n = enc.get_ids().len();
            if n > self.max_tokens {
                return Err(PipelineError::Input(format!(
                    "{field}[{i}]: {n} tokens exceeds the model's maximum of {}; shorten it or ask for truncation",
                    self.max_tokens
                )));
            }
            if n == 0 {
                return Err(PipelineError::Input(format!(
                    "{field}[{i}]: the text has no tokens"
                )));
            }
            let widen = |v: &[u32]| v.iter().map(|&x| x as i64).collect::<Vec<i64>>();
            out.push(Encoded {
                ids: widen(enc.get_ids()),
                mask: widen(enc.get_attention_mask()),
                type_ids: widen(enc.get_type_ids()),
            });
        }
        Ok(out)
    }
}
