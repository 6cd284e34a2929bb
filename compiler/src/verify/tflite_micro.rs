//! Parity with TensorFlow Lite Micro: a blob that `mnistc import` wrote from a full-integer
//! `.tflite`, run by the runtime, against the same `.tflite` run by TFLite Micro's reference
//! kernels (`mnistc check OUT.bin --tflite MODEL.tflite [--per-layer]`).
//!
//! TFLite Micro runs in a Python child process: the `tflite-micro` package on PyPI wraps its
//! reference kernels (`tflite_micro.runtime.Interpreter`), and [`SCRIPT`] (compiled into the
//! binary, run with `python -c`) streams the int8 inputs in on stdin and the int8 values of the
//! asked tensors out on stdout, one input at a time, so the reference outputs of ten thousand
//! images never sit in memory together.
//!
//! Which TFLite tensor an op of the blob writes is found by importing the `.tflite` again
//! ([`crate::import::tflite::import_traced`], then [`crate::lower::fuse_traced`]): the blob must
//! be that import (its source hash is the file's SHA-256), so the two agree op for op. A fused
//! conv + pool is compared at the pool's output tensor (the conv's output never exists in the
//! blob); everything is compared exactly, in int8 steps.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use mnistc_runtime::format::OpKind;
use mnistc_runtime::{Activations, Input, Model, Precision};
use serde::Deserialize;

use super::check::{CheckError, CheckReport, Cmp, Divergence, LayerReport, argmax};
use crate::import::{self, ImportOptions};
use crate::lower::emit::AlignedBytes;
use crate::lower::{self, plan};

/// The Python side (see the file's header).
pub const SCRIPT: &str = include_str!("tflite_micro.py");

/// How to install what [`SCRIPT`] needs, for error messages.
pub const INSTALL_HINT: &str = "`--tflite` runs TFLite Micro's reference kernels from Python: \
     `python3 -m venv .venv-tflm && .venv-tflm/bin/pip install tflite-micro`, then pass \
     `--python .venv-tflm/bin/python` (or set MNISTC_PYTHON)";

/// The seed of [`random_inputs`] (the committed golden outputs use the same stream).
pub const RANDOM_SEED: u64 = 0x6d6e_6973_7463_2121;

/// `n` int8 inputs of `size` values: the low byte of each SplitMix64 draw from [`RANDOM_SEED`]
/// (`scripts/tflm-golden.py --random N` draws the same).
pub fn random_inputs(n: usize, size: usize) -> Vec<i8> {
    let mut state = RANDOM_SEED;
    (0..n * size)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as u8 as i8
        })
        .collect()
}

/// What both sides run.
#[derive(Debug, Clone, Copy)]
pub enum Inputs<'a> {
    /// Raw pixels (`n · h · w · c`), for a model whose input is `pixel − 128`.
    Pixels(&'a [u8]),
    /// int8 tensors in the model's input quantization (`n · h · w · c`).
    Int8(&'a [i8]),
}

/// The JSON line [`SCRIPT`] writes first.
#[derive(Debug, Deserialize)]
struct Header {
    input: TensorInfo,
    tensors: Vec<TensorInfo>,
}

/// One tensor as TFLite Micro allocated it.
#[derive(Debug, Deserialize)]
struct TensorInfo {
    dtype: String,
    size: usize,
}

/// Runs `inputs` through the runtime (`blob`) and TFLite Micro (`tflite`, the bytes of
/// `tflite_path`) with `python`, and compares the int8 logits and, with `per_layer`, every op's
/// output with the TFLite tensor it stands for.
///
/// # Errors
/// [`CheckError`] when the blob does not load, is not an import of this `.tflite`, the file is a
/// float model (mnistc quantized it itself: no bit-exact reference exists), Python or
/// `tflite_micro` cannot run, or either side fails on an input. Disagreement is reported in the
/// [`CheckReport`], not as an error.
pub fn check(
    blob: &[u8],
    tflite_path: &Path,
    tflite: &[u8],
    inputs: Inputs<'_>,
    per_layer: bool,
    python: &OsStr,
) -> Result<CheckReport, CheckError> {
    let aligned = AlignedBytes::from(blob);
    let model = Model::from_bytes(aligned.as_bytes())?;
    let (plan, tensors) = import::tflite::import_traced(tflite_path, tflite, ImportOptions::default())?;
    if plan.precision != plan::Precision::Int8 {
        return Err(CheckError::NotComparable(
            "a float32 .tflite: mnistc quantized it itself, so TFLite Micro has no int8 numbers to match \
             (compare accuracy with `mnistc eval`)"
                .into(),
        ));
    }
    if model.meta().source_hash != plan.source_hash || model.precision() != Precision::Int8 {
        return Err(CheckError::NotComparable(
            "the blob was not imported from this file (its source hash differs)".into(),
        ));
    }
    let (fused, origins) = lower::fuse_traced(plan);
    let ops: Vec<_> = model.ops().collect();
    if fused.ops.len() != ops.len() {
        return Err(CheckError::NotComparable(format!(
            "the import has {} ops, the blob {} (another mnistc version?)",
            fused.ops.len(),
            ops.len()
        )));
    }
    let per_image = model.input_len();
    let (n, tflm_inputs): (usize, Vec<u8>) = match inputs {
        Inputs::Pixels(p) => {
            if !model.takes_pixels() {
                return Err(CheckError::NotComparable(
                    "the model's input is not `pixel − 128`: use random inputs".into(),
                ));
            }
            (p.len() / per_image.max(1), p.iter().map(|&v| v ^ 0x80).collect())
        }
        Inputs::Int8(q) => (q.len() / per_image.max(1), q.iter().map(|&v| v as u8).collect()),
    };
    if n == 0 {
        return Err(CheckError::NoImages);
    }
    if tflm_inputs.len() != n * per_image {
        let s = model.input_shape();
        return Err(CheckError::ImageBytes { len: tflm_inputs.len(), per_image, h: s.h, w: s.w, c: s.c });
    }

    // The blob ops compared and the TFLite tensor of each.
    let last = ops.len() - 1;
    let compared: Vec<usize> = if per_layer { (0..ops.len()).collect() } else { vec![last] };
    let wanted: Vec<&import::tflite::TensorRef> = compared.iter().map(|&i| &tensors[origins[i]]).collect();
    let sizes: Vec<usize> = compared
        .iter()
        .map(|&i| {
            let r = ops[i].record;
            r.out_h as usize * r.out_w as usize * r.out_c as usize
        })
        .collect();
    let list = wanted.iter().map(|t| t.index.to_string()).collect::<Vec<_>>().join(",");

    let python_err = |what: String| CheckError::Python { python: python.to_string_lossy().into_owned(), what };
    let mut child = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(tflite_path)
        .arg(per_image.to_string())
        .arg(&list)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| python_err(format!("cannot start it ({e}); {INSTALL_HINT}")))?;
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(python_err("no pipes to the child process".into()));
    };
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = BufReader::new(stdout);
    // Ends the child and says why it stopped, from its exit status and stderr.
    let finish = |child: &mut std::process::Child, errors: std::thread::JoinHandle<String>, what: &str| {
        let _ = child.kill();
        let status = child.wait().ok();
        let stderr = errors.join().unwrap_or_default();
        let tail: String =
            stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
        if status.and_then(|s| s.code()) == Some(3) {
            python_err(format!("{}; {INSTALL_HINT}", tail.trim()))
        } else {
            python_err(format!("{what}: {}", if tail.is_empty() { "no message" } else { &tail }))
        }
    };

    let mut line = String::new();
    if stdout.read_line(&mut line).map_err(|e| python_err(e.to_string()))? == 0 {
        return Err(finish(&mut child, errors, "TFLite Micro did not load the model"));
    }
    let header: Header = match serde_json::from_str(&line) {
        Ok(h) => h,
        Err(e) => return Err(finish(&mut child, errors, &format!("unreadable reply ({e})"))),
    };
    let mismatch = if header.input.dtype != "int8" || header.input.size != per_image {
        Some(format!(
            "TFLite Micro's input is {} × {}, the blob's int8 × {per_image}",
            header.input.dtype, header.input.size
        ))
    } else {
        header.tensors.iter().zip(&wanted).zip(&sizes).find_map(|((t, w), &size)| {
            (t.dtype != "int8" || t.size != size).then(|| {
                format!(
                    "TFLite tensor {} `{}` is {} × {}, the blob's op writes int8 × {size}",
                    w.index, w.name, t.dtype, t.size
                )
            })
        })
    };
    if let Some(m) = mismatch {
        let _ = child.kill();
        let _ = child.wait();
        return Err(CheckError::NotComparable(m));
    }

    let writer = std::thread::spawn(move || {
        // A write error means the child stopped early; its exit status says why.
        let _ = stdin.write_all(&tflm_inputs);
    });

    let kinds: Vec<&'static str> =
        ops.iter().map(|op| OpKind::from_u8(op.record.kind).map_or("unknown", OpKind::name)).collect();
    let mut layers: Vec<LayerReport> = compared
        .iter()
        .zip(&wanted)
        .zip(&sizes)
        .map(|((&i, t), &elements)| LayerReport {
            index: i,
            name: format!("{} (tensor {})", t.name, t.index),
            kind: kinds[i],
            elements,
            max_abs_diff: 0.0,
            max_lsb_diff: 0,
            mismatches: 0,
            passed: true,
        })
        .collect();
    let total: usize = sizes.iter().sum();
    let mut reference = vec![0u8; total];
    let mut observed: Vec<Vec<i8>> = vec![Vec::new(); ops.len()];
    let mut logits = Cmp::default();
    let mut agree = 0usize;
    let mut arena = AlignedBytes::from(vec![0u8; model.arena_size()].as_slice());
    for image in 0..n {
        let want = |i: usize| per_layer || i == last;
        let x = image * per_image..(image + 1) * per_image;
        let input = match inputs {
            Inputs::Pixels(p) => Input::Pixels(&p[x]),
            Inputs::Int8(q) => Input::I8(&q[x]),
        };
        let rt = model.run_observed(input, arena.as_bytes_mut(), |i, act| {
            if let (true, Activations::I8 { values, .. }) = (want(i), act) {
                observed[i] = values.to_vec();
            }
        });
        if let Err(source) = rt {
            drop(stdout);
            let _ = child.kill();
            let _ = child.wait();
            return Err(CheckError::Runtime { image, source });
        }
        if stdout.read_exact(&mut reference).is_err() {
            return Err(finish(&mut child, errors, &format!("TFLite Micro stopped at input {image}")));
        }
        let mut at = 0;
        for (k, &i) in compared.iter().enumerate() {
            let t: Vec<i8> = reference[at..at + sizes[k]].iter().map(|&b| b as i8).collect();
            at += sizes[k];
            let scale = ops[i].record.output_scale;
            let mut cmp = Cmp::default();
            cmp.ints(&observed[i], &t, scale);
            if i == last {
                logits.ints(&observed[i], &t, scale);
                if argmax(&observed[i]) == argmax(&t) {
                    agree += 1;
                }
            }
            let l = &mut layers[k];
            l.max_abs_diff = l.max_abs_diff.max(cmp.max_abs);
            l.max_lsb_diff = l.max_lsb_diff.max(cmp.max_lsb);
            l.mismatches += cmp.mismatches;
            l.passed &= cmp.mismatches == 0;
        }
    }
    let _ = writer.join();
    let status = child.wait().map_err(|e| python_err(e.to_string()))?;
    let stderr = errors.join().unwrap_or_default();
    if !status.success() {
        return Err(python_err(format!("exited with {status}: {}", stderr.trim())));
    }
    let first_divergence = if per_layer {
        layers.iter().find(|l| !l.passed).map(|l| Divergence { index: l.index, name: l.name.clone(), kind: l.kind })
    } else {
        None
    };
    let top1_agreement = agree as f64 / n as f64;
    Ok(CheckReport {
        images: n,
        top1_agreement,
        max_abs_diff: logits.max_abs,
        max_lsb_diff: logits.max_lsb,
        passed: top1_agreement == 1.0 && logits.mismatches == 0 && first_divergence.is_none(),
        layers: if per_layer { layers } else { Vec::new() },
        first_divergence,
    })
}
