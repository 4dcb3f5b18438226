#![no_main]
// See teacher::fuzzing::rouge.
libfuzzer_sys::fuzz_target!(|data: &[u8]| teacher::fuzzing::rouge(data));
