//! libFuzzer entry point of the `streamed_buffered` harness (see `deliberate_fuzz::streamed_buffered`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::streamed_buffered(data));
