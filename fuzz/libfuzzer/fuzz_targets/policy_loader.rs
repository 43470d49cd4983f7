//! libFuzzer entry point of the `policy_loader` harness (see `deliberate_fuzz::policy_loader`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| deliberate_fuzz::policy_loader(data));
