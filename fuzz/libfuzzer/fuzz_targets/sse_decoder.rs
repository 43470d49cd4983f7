//! libFuzzer entry point of the `sse_decoder` harness (see `deliberate_fuzz::sse_decoder`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::sse_decoder(data));
