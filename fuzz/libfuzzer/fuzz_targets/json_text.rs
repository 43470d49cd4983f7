//! libFuzzer entry point of the `json_text` harness (see `deliberate_fuzz::json_text`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::json_text(data));
