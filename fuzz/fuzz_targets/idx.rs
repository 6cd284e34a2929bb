//! The IDX parsers (`mnistc::data::idx::{parse_images, parse_labels}`) on arbitrary bytes; every
//! input is tried as both an images and a labels file.
//!
//! Properties: never panics; never allocates more than the input's length allows, whatever
//! sizes the header promises (run with `-malloc_limit_mb=512`: inputs are a few KB); an images
//! file that parses holds exactly `n · rows · cols` pixels, which are the bytes after its
//! 16-byte header, and a labels file exactly `n` labels; an error's message is non-empty and
//! names the file.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mnistc::data::idx::{parse_images, parse_labels};

const PATH: &str = "fuzz/input-idx3-ubyte";

fuzz_target!(|data: &[u8]| {
    let path = Path::new(PATH);
    match parse_images(path, data.to_vec()) {
        Ok((n, rows, cols, pixels)) => {
            let promised = (n as u128) * (rows as u128) * (cols as u128);
            assert_eq!(pixels.len() as u128, promised, "pixel count differs from the header's n*rows*cols");
            assert_eq!(be_u32(data, 4) as usize, n);
            assert_eq!((be_u32(data, 8) as usize, be_u32(data, 12) as usize), (rows, cols));
            assert_eq!(pixels, &data[16..]);
        }
        Err(e) => check_error(&e.to_string()),
    }
    match parse_labels(path, data.to_vec()) {
        Ok(labels) => {
            assert_eq!(labels.len(), be_u32(data, 4) as usize, "label count differs from the header's n");
            assert_eq!(labels, &data[8..]);
        }
        Err(e) => check_error(&e.to_string()),
    }
});

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn check_error(message: &str) {
    assert!(!message.trim().is_empty(), "empty error message");
    assert!(message.contains(PATH), "the error does not name the file: {message}");
}
