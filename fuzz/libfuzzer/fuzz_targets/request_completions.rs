//! libFuzzer entry point of the `request_completions` harness (see `deliberate_fuzz::request_completions`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::request_completions(data));
