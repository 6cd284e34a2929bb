//! `SearchSpace::parse` on arbitrary text (a search-space file beside the shipped models, so
//! `base = "digits.toml"` names a real model).
//!
//! Properties: parsing never panics; an error's message is non-empty and names a file of the
//! models folder (the space or its base); a space that parses gives its canonical JSON, and its
//! sampler's first draw is a candidate whose model text parses, or none, never an error (the
//! sampler's doc: an error means a space the loader should have rejected).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mnistc::search::space::SearchSpace;
use mnistc::spec::ModelSpec;

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models");
const SPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/fuzz-space.toml");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match SearchSpace::parse(text, Path::new(SPACE)) {
        Ok(space) => {
            let _ = space.canonical_json();
            let mut sampler = space.sampler();
            match sampler.next_candidate() {
                Ok(Some(candidate)) => {
                    ModelSpec::parse(&candidate.text, "candidate.toml").expect("a drawn candidate parses");
                }
                Ok(None) => {}
                Err(e) => panic!("a space that loaded drew an invalid candidate: {e}"),
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.trim().is_empty(), "empty error message: {e:?}");
            assert!(message.contains(MODELS), "the error names no file: {message}");
        }
    }
});
