//! The CIFAR-10 readers (`mnistc::data::cifar::{parse_batch, parse_class_names}`) on arbitrary
//! bytes; every input is tried as a batch file and as a class-names file.
//!
//! Properties: never panics; a batch that parses came from a whole number (1 to 10,000) of
//! 3,073-byte records, has one label below 10 per record (the record's first byte) and exactly
//! the record's pixels, moved from planes (`RRR…GGG…BBB…`) to interleaved `RGBRGB…`; a class-names
//! file that parses has ten non-empty names; an error's message is non-empty and names the file.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mnistc::data::cifar::{CLASSES, IMAGE_BYTES, RECORD_BYTES, parse_batch, parse_class_names};

const PATH: &str = "fuzz/data_batch_1.bin";

fuzz_target!(|data: &[u8]| {
    let path = Path::new(PATH);
    match parse_batch(path, data) {
        Ok(batch) => {
            assert_eq!(batch.n * RECORD_BYTES, data.len(), "records do not cover the file");
            assert_eq!((batch.pixels.len(), batch.labels.len()), (batch.n * IMAGE_BYTES, batch.n));
            for (i, record) in data.chunks_exact(RECORD_BYTES).enumerate() {
                assert_eq!(batch.labels[i], record[0]);
                assert!(usize::from(record[0]) < CLASSES);
                let image = &batch.pixels[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES];
                for (p, &v) in record[1..].iter().enumerate() {
                    let (c, yx) = (p / 1024, p % 1024);
                    assert_eq!(image[yx * 3 + c], v, "record {i}, plane {c}, pixel {yx}");
                }
            }
        }
        Err(e) => check_error(&e.to_string()),
    }
    match parse_class_names(path, data) {
        Ok(names) => {
            assert_eq!(names.len(), CLASSES);
            assert!(names.iter().all(|n| !n.is_empty() && n.trim() == n));
        }
        Err(e) => check_error(&e.to_string()),
    }
});

fn check_error(message: &str) {
    assert!(!message.trim().is_empty(), "empty error message");
    assert!(message.contains(PATH), "the error does not name the file: {message}");
}
