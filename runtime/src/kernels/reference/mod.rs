//! Reference kernels: the specification of every op.
//!
//! Plain loops written to be obviously correct, one output element at a time, in the order the
//! maths is written down. They are always compiled, public, and never optimised in place: fast
//! paths live in their own modules and are property-tested against these bit for bit.

mod add;
mod conv2d;
mod dense;
mod depthwise_conv2d;
mod pool2d;

pub use add::{add_f32, add_s8};
pub use conv2d::{conv2d_f, conv2d_s8};
pub use dense::{dense_f, dense_s8};
pub use depthwise_conv2d::{depthwise_conv2d_f, depthwise_conv2d_s8};
pub use pool2d::{avgpool2d_f32, avgpool2d_s8, maxpool2d_f32, maxpool2d_s8};

use crate::format::Activation;

/// Applies a float activation.
#[inline(always)]
pub(crate) fn activate_f32(x: f32, activation: Activation) -> f32 {
    match activation {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Relu6 => x.clamp(0.0, 6.0),
    }
}
