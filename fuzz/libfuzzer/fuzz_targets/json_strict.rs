//! libFuzzer entry point of the `json_strict` harness (see `deliberate_fuzz::json_strict`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::json_strict(data));
