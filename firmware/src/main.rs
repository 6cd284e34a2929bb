//! Runs an mnistc model on a Cortex-M4F and checks it against the host runtime.
//!
//! For each test image that build.rs embedded: one inference into a `static` arena, a byte-for-byte
//! comparison of the int8 logits with the host's, the prediction against the label, and the
//! instructions it took (SysTick under QEMU's `-icount shift=0`). Exits through semihosting with
//! status 0 only when every image matched.
//!
//! With the `panic-never` feature the panic handler calls a function that is declared but never
//! defined, so the release build links only if no panic path is left in the whole firmware.
#![no_std]
#![no_main]

use core::fmt::{self, Write};

use cortex_m::peripheral::{SYST, syst::SystClkSource};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug::Exception, hio};
use mnistc_runtime::format::{FLAG_RESIDUAL, FusedPool, MAX_OPS, OpKind};
use mnistc_runtime::{Aligned, Input, Logits, Model, arena_size_of, kernels};
#[cfg(not(feature = "panic-never"))]
use panic_semihosting as _; // a panic prints its message and exits with status 1

/// `panic-never`: a panic path that survives optimisation references this symbol, which nothing
/// defines, so the link fails and names it. Without the feature, `panic-semihosting` handles
/// panics (none is reachable, but a normal build keeps a handler that says so if one were).
#[cfg(feature = "panic-never")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    unsafe extern "Rust" {
        /// Declared, never defined: see the feature's comment in Cargo.toml.
        fn a_panic_path_is_left_in_the_firmware_see_its_panic_never_feature() -> !;
    }
    // SAFETY: never runs; the build does not link while this call is reachable.
    unsafe { a_panic_path_is_left_in_the_firmware_see_its_panic_never_feature() }
}

/// `hprintln!` without its shared `RefCell` (whose borrow can panic): one line to the host's
/// stdout through semihosting; the output is lost if the host has none.
macro_rules! say {
    ($($arg:tt)*) => {
        say(format_args!($($arg)*))
    };
}

fn say(args: fmt::Arguments<'_>) {
    if let Ok(mut out) = hio::hstdout() {
        let _ = out.write_fmt(args);
        let _ = out.write_str("\n");
    }
}

/// A file that build.rs wrote to `OUT_DIR`.
macro_rules! generated {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name))
    };
}

/// The model blob, in flash; the runtime reads it in place, so it must be aligned.
static BLOB: Aligned<[u8; generated!("model.bin").len()]> = Aligned(*generated!("model.bin"));
/// Arena bytes the blob declares, read from its header at compile time.
const ARENA_SIZE: usize = arena_size_of(generated!("model.bin"));
/// Test images (raw `u8` pixels, one after the other) and their labels.
static IMAGES: &[u8] = generated!("images.bin");
static LABELS: &[u8] = generated!("labels.bin");
/// The int8 logits the host runtime computed for each image.
static EXPECTED: &[u8] = generated!("logits.bin");
/// The model takes int8 tensors, not pixels (an imported audio model): `IMAGES` holds them, as
/// bytes, and `LABELS` none (0xFF).
const RAW_INPUT: bool = generated!("raw.bin")[0] == 1;

/// One input as the model takes it: pixels, or the same bytes as int8 values.
fn input_of(bytes: &[u8]) -> Input<'_> {
    if RAW_INPUT {
        // u8 -> i8 never fails (same size and alignment); `try_` leaves no panic path.
        Input::I8(bytemuck::try_cast_slice(bytes).unwrap_or(&[]))
    } else {
        Input::Pixels(bytes)
    }
}

/// SysTick runs at 25 MHz on mps2; under `-icount shift=0` (1 ns per instruction) one tick is 40
/// instructions.
const INSTRUCTIONS_PER_TICK: u64 = 40;
const SYST_RELOAD: u32 = 0x00FF_FFFF;

/// Exit statuses (a panic exits with 1).
const EXIT_PANIC: u32 = 1;
const EXIT_LOAD_FAILED: u32 = 2;
const EXIT_RUN_FAILED: u32 = 3;
const EXIT_MISMATCH: u32 = 4;

#[entry]
fn main() -> ! {
    // `#[entry]` turns this into a `&'static mut` to a `.bss` static, the only reference to it.
    static mut ARENA: Aligned<[u8; ARENA_SIZE]> = Aligned([0; ARENA_SIZE]);
    let Some(peripherals) = cortex_m::Peripherals::take() else {
        exit(EXIT_PANIC) // taken twice: cannot happen in `main`
    };
    let mut syst = peripherals.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYST_RELOAD);
    syst.enable_counter();

    let arena = &mut ARENA.0;
    // A `Model` is about 100 bytes: it borrows the blob and decodes each op when it runs it.
    let loaded = Model::from_bytes(&BLOB.0);
    let model = match &loaded {
        Ok(model) => model,
        Err(e) => {
            say!("blob rejected: {}", e);
            exit(EXIT_LOAD_FAILED)
        }
    };
    say!(
        "{} ({}, {}): blob {} B, arena {} B, {} kernels",
        model.name(),
        model.dataset(),
        model.precision().name(),
        BLOB.0.len(),
        ARENA_SIZE,
        kernels::isa().name()
    );

    let (input_len, output_len) = (model.input_len(), model.output_len());
    if input_len == 0 || output_len == 0 {
        say!("an empty input or output"); // never: `from_bytes` rejects those
        exit(EXIT_LOAD_FAILED)
    }
    let (mut images, mut matches, mut correct) = (0u32, 0u32, 0u32);
    let (mut min, mut max, mut total) = (u32::MAX, 0u32, 0u64);
    let cases = IMAGES.chunks_exact(input_len).zip(LABELS).zip(EXPECTED.chunks_exact(output_len));
    for ((pixels, &label), expected) in cases {
        let (result, ticks) = timed(&mut syst, || model.run_logits(input_of(pixels), arena));
        let Some(ticks) = ticks else {
            say!("image {}: SysTick wrapped (more than 2^24 ticks)", images);
            exit(EXIT_RUN_FAILED)
        };
        let logits = result.unwrap_or_else(|e| {
            say!("image {}: {}", images, e);
            exit(EXIT_RUN_FAILED)
        });
        let Logits::I8 { values, .. } = logits else {
            say!("float logits: the firmware checks int8 models only");
            exit(EXIT_RUN_FAILED)
        };
        if values.iter().map(|&v| v as u8).eq(expected.iter().copied()) {
            matches += 1;
        } else if matches == images {
            say!("image {}: logits differ from the host's", images);
        }
        correct += u32::from(logits.argmax() == usize::from(label));
        (min, max, total) = (min.min(ticks), max.max(ticks), total + u64::from(ticks));
        images += 1;
    }

    say!(
        "{} {}, logits match {}/{}, correct {}{}, instructions/inference {} (min {}, max {}), stack {} B",
        if RAW_INPUT { "inputs" } else { "images" },
        images,
        matches,
        images,
        correct,
        if RAW_INPUT { " (no labels)" } else { "" },
        total * INSTRUCTIONS_PER_TICK / u64::from(images.max(1)),
        u64::from(min) * INSTRUCTIONS_PER_TICK,
        u64::from(max) * INSTRUCTIONS_PER_TICK,
        stack_used()
    );
    per_layer(model, &mut syst, arena, input_len);
    exit(if images > 0 && matches == images && images as usize == LABELS.len() { 0 } else { EXIT_MISMATCH })
}

/// The same images again through `Model::run_observed`, SysTick read after each op: the mean
/// instructions of each op (its decoding, its kernel and, for the first, writing the input),
/// one line per op. The observer's own few instructions fall between two readings and count
/// for no op; the total is the inference above within a few hundred instructions. After the
/// summary line, whose stack figure is that of plain inference: the observer costs some more.
#[inline(never)]
fn per_layer(model: &Model<'_>, syst: &mut SYST, arena: &mut [u8], input_len: usize) {
    let mut ticks = [0u64; MAX_OPS];
    let mut images = 0u64;
    for pixels in IMAGES.chunks_exact(input_len) {
        syst.clear_current();
        let mut last = SYST::get_current();
        let run = model.run_observed(input_of(pixels), arena, |i, _| {
            let now = SYST::get_current();
            if let Some(t) = ticks.get_mut(i) {
                *t += u64::from(last.wrapping_sub(now) & SYST_RELOAD);
            }
            last = SYST::get_current();
        });
        if run.is_err() || syst.has_wrapped() {
            say!("per-layer run failed or SysTick wrapped");
            exit(EXIT_RUN_FAILED)
        }
        images += 1;
    }
    for ((i, op), t) in model.ops().enumerate().zip(ticks) {
        let r = op.record;
        say!(
            "op {} {}{}{}: {}x{}x{} -> {}x{}x{}, instructions {}",
            i,
            OpKind::from_u8(r.kind).map_or("?", OpKind::name),
            FusedPool::from_u8(r.pool).map_or("", FusedPool::suffix),
            if r.flags & FLAG_RESIDUAL != 0 { "+add" } else { "" },
            r.in_h,
            r.in_w,
            r.in_c,
            r.out_h,
            r.out_w,
            r.out_c,
            t * INSTRUCTIONS_PER_TICK / images.max(1)
        );
    }
}

/// Runs `f` and returns its result and the SysTick ticks it took (repeatable under `-icount`),
/// `None` if SysTick wrapped (the region took more than 2^24 ticks).
fn timed<R>(syst: &mut SYST, f: impl FnOnce() -> R) -> (R, Option<u32>) {
    syst.clear_current(); // also clears COUNTFLAG
    let start = SYST::get_current();
    let result = f();
    let end = SYST::get_current();
    let ticks = (!syst.has_wrapped()).then_some(start.wrapping_sub(end) & SYST_RELOAD);
    (result, ticks)
}

/// Bytes of stack used so far: cortex-m-rt's `paint-stack` filled the stack with a known value at
/// reset, and the deepest word that no longer holds it marks the high-water line.
fn stack_used() -> usize {
    unsafe extern "C" {
        static _stack_end: u32; // lowest address of the stack region (cortex-m-rt's link.x)
        static _stack_start: u32; // initial stack pointer, its top
    }
    let bottom = (&raw const _stack_end).cast::<u32>();
    let top = (&raw const _stack_start) as usize;
    let sp = cortex_m::register::msp::read() as usize;
    let mut word = bottom;
    // SAFETY: every word from the bottom of the stack region up to the current stack pointer lies in
    // RAM that no live object occupies; reading it volatile observes only the paint or stale data.
    while (word as usize) < sp && unsafe { word.read_volatile() } == cortex_m_rt::STACK_PAINT_VALUE {
        word = word.wrapping_add(1);
    }
    top - word as usize
}

/// Ends the QEMU session with `status` (semihosting SYS_EXIT_EXTENDED; `debug::exit` knows only
/// success and failure).
fn exit(status: u32) -> ! {
    const SYS_EXIT_EXTENDED: usize = 0x20;
    let block = [Exception::ApplicationExit as usize, status as usize];
    // SAFETY: SYS_EXIT_EXTENDED takes a pointer to a two-word parameter block, which `block` is.
    unsafe { cortex_m_semihosting::syscall(SYS_EXIT_EXTENDED, &block) };
    loop {
        cortex_m::asm::wfi();
    }
}
