//! libFuzzer entry point of the `stream_chat` harness (see `deliberate_fuzz::stream_chat`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::stream_chat(data));
