//! Random shifts, rotations and horizontal flips of training images, done on the `u8` pixels
//! with a seeded RNG.
//!
//! Each image gets an integer shift `(dx, dy)` uniform in `-shift..=shift`, an angle uniform in
//! `[-rotate, rotate]` degrees about the image centre and, with `flip`, a left-right mirror with
//! probability ½. Output pixels are sampled from the source by inverse mapping with bilinear
//! interpolation; pixels that come from outside the image are 0 (background). Without rotation
//! the shift is an exact pixel copy, the same as a random crop of the image padded with `shift`
//! zeros on every side (the usual CIFAR-10 augmentation). Colour images (`HWC`) move every
//! channel of a pixel together.

use crate::data::Rng;
use crate::spec::Augment;

/// Writes an augmented copy of `src` (`h*w*c` interleaved bytes) into `out`.
pub(crate) fn augment_into(src: &[u8], (h, w, c): (usize, usize, usize), aug: &Augment, rng: &mut Rng, out: &mut [u8]) {
    let (dx, dy) = if aug.shift > 0 { (rng.symmetric(aug.shift), rng.symmetric(aug.shift)) } else { (0, 0) };
    let angle = if aug.rotate > 0.0 { (rng.unit_f64() * 2.0 - 1.0) * aug.rotate } else { 0.0 };
    let mirror = aug.flip && rng.below(2) == 1;
    if angle == 0.0 {
        shift(src, (h, w, c), dx, dy, out);
    } else {
        rotate_shift(src, (h, w, c), angle.to_radians(), dx as f64, dy as f64, out);
    }
    if mirror {
        flip_horizontally(out, w * c, c);
    }
}

fn shift(src: &[u8], (h, w, c): (usize, usize, usize), dx: i64, dy: i64, out: &mut [u8]) {
    for y in 0..h {
        let sy = y as i64 - dy;
        for x in 0..w {
            let sx = x as i64 - dx;
            let o = (y * w + x) * c;
            if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                let s = (sy as usize * w + sx as usize) * c;
                out[o..o + c].copy_from_slice(&src[s..s + c]);
            } else {
                out[o..o + c].fill(0);
            }
        }
    }
}

fn rotate_shift(src: &[u8], (h, w, c): (usize, usize, usize), theta: f64, dx: f64, dy: f64, out: &mut [u8]) {
    let (sin, cos) = theta.sin_cos();
    let cx = (w as f64 - 1.0) / 2.0;
    let cy = (h as f64 - 1.0) / 2.0;
    let pixel = |x: i64, y: i64, ch: usize| -> f64 {
        if x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h {
            f64::from(src[(y as usize * w + x as usize) * c + ch])
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
            for ch in 0..c {
                let value = pixel(x0, y0, ch) * (1.0 - fx) * (1.0 - fy)
                    + pixel(x0 + 1, y0, ch) * fx * (1.0 - fy)
                    + pixel(x0, y0 + 1, ch) * (1.0 - fx) * fy
                    + pixel(x0 + 1, y0 + 1, ch) * fx * fy;
                out[(y * w + x) * c + ch] = value.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// Mirrors every row (`row_len` bytes, pixels of `c` bytes) left to right, in place.
fn flip_horizontally(image: &mut [u8], row_len: usize, c: usize) {
    for row in image.chunks_exact_mut(row_len) {
        let w = row_len / c;
        for x in 0..w / 2 {
            for ch in 0..c {
                row.swap(x * c + ch, (w - 1 - x) * c + ch);
            }
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
        shift(&dot(), (5, 5, 1), 2, -1, &mut out);
        assert_eq!(out[5 + 3], 200);
        assert_eq!(out.iter().filter(|&&p| p != 0).count(), 1);
        shift(&dot(), (5, 5, 1), -2, 0, &mut out);
        assert!(out.iter().all(|&p| p == 0));
    }

    #[test]
    fn rotation_by_90_degrees_turns_the_image() {
        let mut out = vec![0; 25];
        rotate_shift(&dot(), (5, 5, 1), std::f64::consts::FRAC_PI_2, 0.0, 0.0, &mut out);
        // Inverse mapping: output (x, y) samples source (sx, sy) = (y, 4 - x), so the source
        // pixel (x 1, y 2) appears at output (x 2, y 1).
        assert_eq!(out[5 + 2], 200);
        assert_eq!(out.iter().filter(|&&p| p != 0).count(), 1);
    }

    #[test]
    fn zero_rotation_and_shift_is_identity_and_deterministic() {
        let aug = Augment { shift: 0, rotate: 0.0, flip: false };
        let mut out = vec![0; 25];
        augment_into(&dot(), (5, 5, 1), &aug, &mut Rng::new(1), &mut out);
        assert_eq!(out, dot());
        let aug = Augment { shift: 2, rotate: 15.0, flip: true };
        let mut a = vec![0; 25];
        let mut b = vec![0; 25];
        augment_into(&dot(), (5, 5, 1), &aug, &mut Rng::new(9), &mut a);
        augment_into(&dot(), (5, 5, 1), &aug, &mut Rng::new(9), &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn colour_pixels_move_together_and_flip_mirrors_rows() {
        // 2x3 RGB image: pixel (y, x) = [10y + x, 100 + 10y + x, 200 + x].
        let img: Vec<u8> =
            (0..2).flat_map(|y| (0..3).flat_map(move |x| [10 * y + x, 100 + 10 * y + x, 200 + x])).collect();
        let mut out = vec![0; 18];
        shift(&img, (2, 3, 3), 1, 0, &mut out);
        assert_eq!(&out[..9], &[0, 0, 0, 0, 100, 200, 1, 101, 201]);
        assert_eq!(&out[9..], &[0, 0, 0, 10, 110, 200, 11, 111, 201]);
        let mut mirrored = img.clone();
        flip_horizontally(&mut mirrored, 9, 3);
        assert_eq!(&mirrored[..9], &[2, 102, 202, 1, 101, 201, 0, 100, 200]);
        flip_horizontally(&mut mirrored, 9, 3);
        assert_eq!(mirrored, img);
    }

    #[test]
    fn flip_mirrors_about_half_the_images() {
        let aug = Augment { shift: 0, rotate: 0.0, flip: true };
        let mut rng = Rng::new(5);
        let mut out = vec![0; 25];
        let flipped = (0..1000)
            .filter(|_| {
                augment_into(&dot(), (5, 5, 1), &aug, &mut rng, &mut out);
                out != dot()
            })
            .count();
        assert!((400..600).contains(&flipped), "{flipped} of 1000 flipped");
    }
}
