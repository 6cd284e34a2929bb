//! Times a blob on this machine, op by op, for every kernel set the CPU has: the host-side
//! counterpart of the firmware's per-layer instruction table.
//!
//! ```sh
//! cargo run --release -p mnistc-runtime --features std --example op_times -- firmware/digits.bin [RUNS [ISA]]
//! ```
//!
//! For each ISA (or only the one named, e.g. `avx2`): the median over RUNS (default 3,000) single-thread batch-1 inferences of the
//! whole run (`Model::run_logits`) and of each op (time between consecutive observer calls;
//! op 0 includes writing the input), after 300 warm-up runs.

use mnistc_runtime::kernels::{Isa, set_isa};
use mnistc_runtime::{Input, Model};
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: op_times BLOB [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().map_or(3000, |r| r.parse().unwrap_or(3000));
    let only = args.next();
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let model = Model::from_bytes(&bytes).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let mut arena = vec![0u8; model.arena_size()];
    // A fixed input: pixels for a pixel model, else int8 values.
    let pixels: Vec<u8> = (0..model.input_len()).map(|i| (i * 37 % 256) as u8).collect();
    let int8: Vec<i8> = pixels.iter().map(|&p| p as i8).collect();
    let input = || if model.takes_pixels() { Input::Pixels(&pixels) } else { Input::I8(&int8) };
    let wanted = |i: &Isa| i.is_available() && only.as_deref().is_none_or(|o| o == i.name());
    for isa in Isa::ALL.into_iter().filter(wanted) {
        set_isa(Some(isa));
        let runs = if isa == Isa::Reference { runs.min(100) } else { runs };
        for _ in 0..runs.min(300) {
            model.run_logits(input(), &mut arena).expect("the blob runs");
        }
        let mut whole = Vec::with_capacity(runs);
        let mut ops: Vec<Vec<f64>> = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let mut last = start;
            let mut times = Vec::with_capacity(16);
            model
                .run_observed(input(), &mut arena, |_, _| {
                    let now = Instant::now();
                    times.push((now - last).as_secs_f64() * 1e6);
                    last = now;
                })
                .expect("the blob runs");
            for (i, t) in times.into_iter().enumerate() {
                if ops.len() <= i {
                    ops.push(Vec::with_capacity(runs));
                }
                ops[i].push(t);
            }
            let start = Instant::now();
            model.run_logits(input(), &mut arena).expect("the blob runs");
            whole.push(start.elapsed().as_secs_f64() * 1e6);
        }
        print!("{:<12} whole {:8.2} µs  ops", isa.name(), median(&mut whole));
        for op in &mut ops {
            print!(" {:.2}", median(op));
        }
        println!();
    }
    set_isa(None);
}
