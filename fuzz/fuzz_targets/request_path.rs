//! Fuzzes the request path's decision (`tailshift_proxy::path::decide`, the handler's own
//! code) against a worst-case upstream: see `fuzz/properties.rs` for the input and the
//! properties.
#![no_main]

#[allow(dead_code)] // The response_head half is the other target's.
#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::request_path(data));
