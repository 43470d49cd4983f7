//! libFuzzer entry point of the `request_chat` harness (see `deliberate_fuzz::request_chat`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::request_chat(data));
