//! Arbitrary bytes as texts for the embedding pipeline, exact and truncating. The
//! tokenizer is the committed BERT-style fixture (same normaliser, pre-tokeniser,
//! WordPiece model and template as the shipped MiniLM, with a small vocabulary);
//! `CONVOY_FUZZ_TOKENIZER=models/minilm/tokenizer.json` fuzzes the real one.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use convoy::pipeline::text::TextStage;
use libfuzzer_sys::fuzz_target;

mod harness;

fn stage() -> &'static TextStage {
    static STAGE: OnceLock<TextStage> = OnceLock::new();
    STAGE.get_or_init(|| {
        let path = std::env::var_os("CONVOY_FUZZ_TOKENIZER")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/fixtures/tokenizer.json"
                ))
            });
        harness::text_stage(&path)
    })
}

fuzz_target!(|data: &[u8]| harness::tokenizer(stage(), data));
