#![no_main]
// See teacher::fuzzing::chat_template.
libfuzzer_sys::fuzz_target!(|data: &[u8]| teacher::fuzzing::chat_template(data));
