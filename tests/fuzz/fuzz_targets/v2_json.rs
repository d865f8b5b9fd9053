//! Arbitrary bytes as a JSON infer body: parse, schedule, decode against the MLP and an
//! every-datatype model, then stack and split what was accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod harness;

fuzz_target!(|data: &[u8]| harness::v2_json(data));
