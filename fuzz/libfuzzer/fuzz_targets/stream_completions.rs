//! libFuzzer entry point of the `stream_completions` harness (see `deliberate_fuzz::stream_completions`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::stream_completions(data));
