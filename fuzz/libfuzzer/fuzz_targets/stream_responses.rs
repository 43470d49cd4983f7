//! libFuzzer entry point of the `stream_responses` harness (see `deliberate_fuzz::stream_responses`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::stream_responses(data));
