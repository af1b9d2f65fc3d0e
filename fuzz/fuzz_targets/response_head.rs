//! Fuzzes the upstream response-head parser (`tailshift_proxy::h1::parse_response_head`, with
//! its `unsafe` field offsets) and the chunked decoder: see `fuzz/properties.rs` for the input
//! and the properties.
#![no_main]

#[allow(dead_code)] // The request_path half is the other target's.
#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::response_head(data));
