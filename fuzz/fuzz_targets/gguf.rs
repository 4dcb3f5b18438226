#![no_main]
// See teacher::fuzzing::gguf.
libfuzzer_sys::fuzz_target!(|data: &[u8]| teacher::fuzzing::gguf(data));
