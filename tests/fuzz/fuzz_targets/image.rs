//! Arbitrary bytes as an uploaded image: decode, resize, crop, normalise (the shipped
//! classifier's pre-processing, with small limits).
#![no_main]

use libfuzzer_sys::fuzz_target;

mod harness;

fuzz_target!(|data: &[u8]| harness::image(data));
