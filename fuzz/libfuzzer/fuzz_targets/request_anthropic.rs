//! libFuzzer entry point of the `request_anthropic` harness (see `deliberate_fuzz::request_anthropic`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::request_anthropic(data));
