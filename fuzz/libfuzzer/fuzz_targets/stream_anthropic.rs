//! libFuzzer entry point of the `stream_anthropic` harness (see `deliberate_fuzz::stream_anthropic`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::stream_anthropic(data));
