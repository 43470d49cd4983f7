//! libFuzzer entry point of the `request_responses` harness (see `deliberate_fuzz::request_responses`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::request_responses(data));
