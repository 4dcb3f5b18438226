#![no_main]
// See teacher::fuzzing::input_files.
libfuzzer_sys::fuzz_target!(|data: &[u8]| teacher::fuzzing::input_files(data));
