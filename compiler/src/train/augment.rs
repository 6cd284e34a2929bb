//! Random shifts and rotations of training images, done on the `u8` pixels with a seeded RNG.
//!
//! Each image gets an integer shift `(dx, dy)` uniform in `-shift..=shift` and an angle
//! uniform in `[-rotate, rotate]` degrees about the image centre. Output pixels are sampled
//! from the source by inverse mapping with bilinear interpolation; pixels that come from
//! outside the image are 0 (background). Without rotation the shift is an exact pixel copy.

use crate::data::Rng;
use crate::spec::Augment;

/// Writes an augmented copy of `src` (`h*w` pixels) into `out`.
pub(crate) fn augment_into(src: &[u8], h: usize, w: usize, aug: &Augment, rng: &mut Rng, out: &mut [u8]) {
    let (dx, dy) = if aug.shift > 0 { (rng.symmetric(aug.shift), rng.symmetric(aug.shift)) } else { (0, 0) };
    let angle = if aug.rotate > 0.0 { (rng.unit_f64() * 2.0 - 1.0) * aug.rotate } else { 0.0 };
    if angle == 0.0 {
        shift(src, h, w, dx, dy, out);
    } else {
        rotate_shift(src, h, w, angle.to_radians(), dx as f64, dy as f64, out);
    }
}

fn shift(src: &[u8], h: usize, w: usize, dx: i64, dy: i64, out: &mut [u8]) {
    for y in 0..h {
        let sy = y as i64 - dy;
        for x in 0..w {
            let sx = x as i64 - dx;
            out[y * w + x] = if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                src[sy as usize * w + sx as usize]
            } else {
                0
            };
        }
    }
}

fn rotate_shift(src: &[u8], h: usize, w: usize, theta: f64, dx: f64, dy: f64, out: &mut [u8]) {
    let (sin, cos) = theta.sin_cos();
    let cx = (w as f64 - 1.0) / 2.0;
    let cy = (h as f64 - 1.0) / 2.0;
    let pixel = |x: i64, y: i64| -> f64 {
        if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
            f64::from(src[y as usize * w + x as usize])
        } else {
            0.0
        }
    };
    for y in 0..h {
        for x in 0..w {
            // Undo the shift, then the rotation (inverse mapping).
            let u = x as f64 - cx - dx;
            let v = y as f64 - cy - dy;
            let sx = cos * u + sin * v + cx;
            let sy = -sin * u + cos * v + cy;
            let x0 = sx.floor();
            let y0 = sy.floor();
            let fx = sx - x0;
            let fy = sy - y0;
            let (x0, y0) = (x0 as i64, y0 as i64);
            let value = pixel(x0, y0) * (1.0 - fx) * (1.0 - fy)
                + pixel(x0 + 1, y0) * fx * (1.0 - fy)
                + pixel(x0, y0 + 1) * (1.0 - fx) * fy
                + pixel(x0 + 1, y0 + 1) * fx * fy;
            out[y * w + x] = value.round().clamp(0.0, 255.0) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot() -> Vec<u8> {
        let mut img = vec![0u8; 5 * 5];
        img[2 * 5 + 1] = 200; // row 2, column 1
        img
    }

    #[test]
    fn shift_moves_pixels_and_fills_with_zero() {
        let mut out = vec![0; 25];
        shift(&dot(), 5, 5, 2, -1, &mut out);
        assert_eq!(out[5 + 3], 200);
        assert_eq!(out.iter().filter(|&&p| p != 0).count(), 1);
        shift(&dot(), 5, 5, -2, 0, &mut out);
        assert!(out.iter().all(|&p| p == 0));
    }

    #[test]
    fn rotation_by_90_degrees_turns_the_image() {
        let mut out = vec![0; 25];
        rotate_shift(&dot(), 5, 5, std::f64::consts::FRAC_PI_2, 0.0, 0.0, &mut out);
        // Inverse mapping: output (x, y) samples source (sx, sy) = (y, 4 - x), so the source
        // pixel (x 1, y 2) appears at output (x 2, y 1).
        assert_eq!(out[5 + 2], 200);
        assert_eq!(out.iter().filter(|&&p| p != 0).count(), 1);
    }

    #[test]
    fn zero_rotation_and_shift_is_identity_and_deterministic() {
        let aug = Augment { shift: 0, rotate: 0.0 };
        let mut out = vec![0; 25];
        augment_into(&dot(), 5, 5, &aug, &mut Rng::new(1), &mut out);
        assert_eq!(out, dot());
        let aug = Augment { shift: 2, rotate: 15.0 };
        let mut a = vec![0; 25];
        let mut b = vec![0; 25];
        augment_into(&dot(), 5, 5, &aug, &mut Rng::new(9), &mut a);
        augment_into(&dot(), 5, 5, &aug, &mut Rng::new(9), &mut b);
        assert_eq!(a, b);
    }
}
