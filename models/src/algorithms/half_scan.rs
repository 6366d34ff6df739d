//! ALS's full scan over item factors held in half precision.
//!
//! Scoring every item is one dot product per item with the person's factors: at 10,000
//! items × 64 factors that reads 2.5 MB of `f32`, more than a core's L2 cache, and the scan
//! waits on memory. Training rounds the item factors to the nearest half-precision number
//! ([`round_to_half`]), so the model *is* its half-precision factors: a 2-byte copy of them
//! ([`HalfFactors`]) holds exactly the same values in half the bytes, and the scan reads it,
//! widens each value to `f32` in a register and multiplies in `f32`. The scores differ from
//! an `f32` scan only in the order of the additions.
//!
//! The copy is laid out in blocks of 16 items stored factor by factor, so one register
//! holds one factor of 16 items and the scan accumulates 16 scores per register without
//! any horizontal sum. AVX-512 converts 16 halves in one instruction; elsewhere (and for
//! artifacts whose factors are not half-precision numbers, such as those written before
//! the rounding) the caller keeps its `f32` scan.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Items per block: one AVX-512 register of `f32`.
const LANES: usize = 16;

/// Rounds every value to the nearest half-precision number (ties to even) when all of them
/// lie within its range (±65,504); returns whether it did. Values outside the range leave
/// the slice untouched.
pub fn round_to_half(values: &mut [f32]) -> bool {
    let max = f16::MAX.to_f32();
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN fails the test too.
    if values.iter().any(|v| !(v.abs() <= max)) {
        return false;
    }
    values.iter_mut().for_each(|v| *v = f16::from_f32(*v).to_f32());
    true
}

/// Row-major `n × k` factors, each exactly a half-precision number, as blocks of 16 rows
/// stored factor-major: value `(row, d)` is at `((row / 16) · k + d) · 16 + row % 16`; the
/// last block is padded with zeros.
#[derive(Debug, Clone, Default)]
pub struct HalfFactors {
    k: usize,
    n: usize,
    bits: Vec<u16>,
}

impl HalfFactors {
    /// The copy of row-major `factors` with `k` columns, or `None` when a value is not
    /// exactly a half-precision number (the copy would change the model) or the shape is
    /// off.
    pub fn new(factors: &[f32], k: usize) -> Option<HalfFactors> {
        if k == 0 || !factors.len().is_multiple_of(k) {
            return None;
        }
        let n = factors.len() / k;
        let mut bits = vec![0u16; n.div_ceil(LANES) * k * LANES];
        for (row, values) in factors.chunks_exact(k).enumerate() {
            let (block, lane) = (row / LANES, row % LANES);
            for (d, &v) in values.iter().enumerate() {
                let half = f16::from_f32(v);
                if half.to_f32().to_bits() != v.to_bits() {
                    return None;
                }
                bits[(block * k + d) * LANES + lane] = half.to_bits();
            }
        }
        Some(HalfFactors { k, n, bits })
    }

    /// `out[i] = x · row i` for every row, where AVX-512 is available (and chosen, see
    /// [`super::linalg::set_level`]); returns `false` without writing anything elsewhere.
    /// `x` has `k` values and `out` one per row.
    pub fn dots(&self, x: &[f32], out: &mut [f32]) -> bool {
        if x.len() != self.k || out.len() != self.n {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = super::linalg::avx512() {
            pulp::Simd::vectorize(simd, Avx512Dots { simd, factors: self, x, out });
            return true;
        }
        false
    }

    /// The same products in scalar code, for tests and as the reference of the kernel.
    #[cfg(test)]
    fn dots_scalar(&self, x: &[f32], out: &mut [f32]) {
        for (row, o) in out.iter_mut().enumerate() {
            let (block, lane) = (row / LANES, row % LANES);
            *o = (0..self.k)
                .map(|d| f16::from_bits(self.bits[(block * self.k + d) * LANES + lane]).to_f32() * x[d])
                .sum();
        }
    }
}

/// `dst[i] = src[i]` as `f32`, over the common length: 16 values per instruction on
/// AVX-512, elsewhere `half`'s conversion (F16C where the CPU has it).
pub fn widen(src: &[f16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = super::linalg::avx512() {
        pulp::Simd::vectorize(simd, Avx512Widen { simd, src: src.reinterpret_cast(), dst });
        return;
    }
    src.convert_to_f32_slice(dst);
}

#[cfg(target_arch = "x86_64")]
struct Avx512Widen<'a> {
    simd: pulp::x86::V4,
    src: &'a [u16],
    dst: &'a mut [f32],
}

#[cfg(target_arch = "x86_64")]
impl pulp::WithSimd for Avx512Widen<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let f = self.simd.avx512f;
        let (src, src_rest) = pulp::as_arrays::<LANES, u16>(self.src);
        let (dst, dst_rest) = pulp::as_arrays_mut::<LANES, f32>(self.dst);
        for (s, d) in src.iter().zip(dst) {
            *d = pulp::cast(f._mm512_cvtph_ps(pulp::cast(*s)));
        }
        for (&s, d) in src_rest.iter().zip(dst_rest) {
            *d = f16::from_bits(s).to_f32();
        }
    }
}

#[cfg(target_arch = "x86_64")]
struct Avx512Dots<'a> {
    simd: pulp::x86::V4,
    factors: &'a HalfFactors,
    x: &'a [f32],
    out: &'a mut [f32],
}

#[cfg(target_arch = "x86_64")]
impl pulp::WithSimd for Avx512Dots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let f = self.simd.avx512f;
        let k = self.factors.k;
        let (lanes, _) = pulp::as_arrays::<LANES, u16>(&self.factors.bits);
        // Four independent sums per block, so consecutive multiply-adds do not wait on
        // each other.
        for (values, out) in lanes.chunks_exact(k).zip(self.out.chunks_mut(LANES)) {
            let zero = f._mm512_setzero_ps();
            let mut acc = [zero; 4];
            let (quads, rest) = (values.chunks_exact(4), values.len() / 4 * 4);
            for (quad, x) in quads.zip(self.x.chunks_exact(4)) {
                for j in 0..4 {
                    let v = f._mm512_cvtph_ps(pulp::cast(quad[j]));
                    acc[j] = f._mm512_fmadd_ps(v, f._mm512_set1_ps(x[j]), acc[j]);
                }
            }
            for (d, lane) in values.iter().enumerate().skip(rest) {
                let v = f._mm512_cvtph_ps(pulp::cast(*lane));
                acc[0] = f._mm512_fmadd_ps(v, f._mm512_set1_ps(self.x[d]), acc[0]);
            }
            let sum = f._mm512_add_ps(f._mm512_add_ps(acc[0], acc[1]), f._mm512_add_ps(acc[2], acc[3]));
            let sum: [f32; LANES] = pulp::cast(sum);
            // A whole block is one store; `copy_from_slice` of a run-time length was a call.
            match <&mut [f32; LANES]>::try_from(&mut *out) {
                Ok(block) => *block = sum,
                Err(_) => out.copy_from_slice(&sum[..out.len()]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn factors(n: usize, k: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut values: Vec<f32> = (0..n * k).map(|_| rng.gen_range(-1.5f32..1.5)).collect();
        assert!(round_to_half(&mut values));
        values
    }

    #[test]
    fn rounding_is_exact_in_the_copy_and_refuses_what_half_cannot_hold() {
        let mut values = vec![0.1f32, -3.0e-6, 1.0 / 3.0, 6.0e4];
        assert!(round_to_half(&mut values));
        assert_eq!(values[0], f16::from_f32(0.1).to_f32());
        assert!(HalfFactors::new(&values, 2).is_some());
        // Unrounded values, out-of-range values and NaN are refused.
        assert!(HalfFactors::new(&[0.1, 0.2], 2).is_none());
        let mut large = vec![1.0f32, 7.0e4];
        assert!(!round_to_half(&mut large));
        assert_eq!(large, [1.0, 7.0e4]);
        assert!(!round_to_half(&mut [f32::NAN]));
        assert!(HalfFactors::new(&values, 3).is_none());
    }

    #[test]
    fn the_kernel_matches_an_f64_reference_at_every_shape() {
        // Block remainders (n not a multiple of 16) and factor counts not a multiple of 4.
        for (n, k) in [(1, 1), (15, 3), (16, 64), (17, 7), (100, 64), (333, 130)] {
            let values = factors(n, k, n as u64 * 31 + k as u64);
            let x: Vec<f32> = factors(1, k, 7 + k as u64);
            let half = HalfFactors::new(&values, k).unwrap();
            let reference: Vec<f64> = values
                .chunks_exact(k)
                .map(|row| row.iter().zip(&x).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum())
                .collect();
            let magnitude: Vec<f64> = values
                .chunks_exact(k)
                .map(|row| row.iter().zip(&x).map(|(&a, &b)| f64::from(a * b).abs()).sum())
                .collect();
            let mut scalar = vec![0f32; n];
            half.dots_scalar(&x, &mut scalar);
            let mut kernel = vec![f32::NAN; n];
            let ran = half.dots(&x, &mut kernel);
            for i in 0..n {
                let bound = 1e-6 * (k as f64) * magnitude[i] + 1e-30;
                assert!((f64::from(scalar[i]) - reference[i]).abs() <= bound, "scalar n {n} k {k} row {i}");
                if ran {
                    let got = f64::from(kernel[i]);
                    assert!(
                        (got - reference[i]).abs() <= bound,
                        "avx512 n {n} k {k} row {i}: {got} vs {}",
                        reference[i]
                    );
                }
            }
            if !ran {
                assert!(kernel.iter().all(|v| v.is_nan()), "nothing is written without AVX-512");
            }
        }
    }

    #[test]
    fn widening_matches_half_at_every_length() {
        let mut rng = StdRng::seed_from_u64(3);
        // Every bit pattern class: normal, subnormal, zero, both signs.
        let pool: Vec<f16> = (0..200)
            .map(|i| match i % 4 {
                0 => f16::from_f32(rng.gen_range(-100.0f32..100.0)),
                1 => f16::from_bits(rng.gen_range(0u16..0x0400)),
                2 => f16::from_f32(-0.0),
                _ => f16::from_f32(rng.gen_range(-1e-3f32..1e-3)),
            })
            .collect();
        for n in [0, 1, 15, 16, 17, 33, 200] {
            let mut out = vec![f32::NAN; n];
            widen(&pool[..n], &mut out);
            for (i, (&h, &o)) in pool.iter().zip(&out).enumerate() {
                assert_eq!(h.to_f32().to_bits(), o.to_bits(), "n {n}, entry {i}");
            }
        }
    }

    #[test]
    fn wrong_shapes_are_refused_without_writing() {
        let half = HalfFactors::new(&factors(20, 4, 1), 4).unwrap();
        let mut out = vec![f32::NAN; 19];
        assert!(!half.dots(&[1.0; 4], &mut out));
        let mut out = vec![f32::NAN; 20];
        assert!(!half.dots(&[1.0; 3], &mut out));
        assert!(out.iter().all(|v| v.is_nan()));
    }
}
