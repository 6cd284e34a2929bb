//! `ModelSpec::parse` on arbitrary text (a `model.toml`).
//!
//! Properties: parsing never panics; a spec that parses parses again to the same value, has
//! shapes, parameter and MAC counts (its doc: only a spec modified after parsing can fail them),
//! and the footprint estimate answers without panicking; an error's message is non-empty and
//! names the origin.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mnistc::lower::budget;
use mnistc::spec::{ModelSpec, SpecError};

const ORIGIN: &str = "fuzz/model.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match ModelSpec::parse(text, ORIGIN) {
        Ok(spec) => {
            let again = ModelSpec::parse(text, ORIGIN).expect("a spec that parsed parses again");
            // Debug, not PartialEq: a NaN field would make equal specs unequal.
            assert_eq!(format!("{spec:?}"), format!("{again:?}"), "parsing is not deterministic");
            spec.shapes().expect("a parsed spec has shapes");
            spec.total_params().expect("a parsed spec has a parameter count");
            spec.total_macs().expect("a parsed spec has a MAC count");
            let _ = spec.training_key_json();
            let _ = budget::estimate(&spec);
        }
        Err(e) => check_error(&e),
    }
});

fn check_error(e: &SpecError) {
    let message = e.to_string();
    assert!(!message.trim().is_empty(), "empty error message: {e:?}");
    assert!(message.contains(ORIGIN), "the error does not name its origin: {message}");
}
