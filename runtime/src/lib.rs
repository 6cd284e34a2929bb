#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
// Every `unsafe` block of the library states why it is sound (tests are exempt).
#![cfg_attr(not(test), deny(clippy::undocumented_unsafe_blocks))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo, clippy::unimplemented)
)]

#[cfg(feature = "std")]
extern crate std;

pub mod error;
pub mod format;
pub mod kernels;
pub mod model;
pub mod quant;
pub mod run;

pub use error::{LoadError, Problem, RunError};
pub use format::{Activation, OpKind, Precision, arena_size_of};
pub use kernels::params::{ParamError, Shape};
pub use model::Model;
pub use run::{Activations, Input, Logits};

/// A buffer aligned to 16 bytes: for a blob embedded with `include_bytes!` or a `static` arena.
///
/// ```
/// use mnistc_runtime::Aligned;
/// static ARENA_BYTES: usize = 1024;
/// let mut arena = Aligned([0u8; 1024]);
/// assert_eq!(arena.0.as_ptr() as usize % 16, 0);
/// # let _ = ARENA_BYTES;
/// ```
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy)]
pub struct Aligned<T: ?Sized>(pub T);
