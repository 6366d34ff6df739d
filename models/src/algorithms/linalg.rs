//! Small dense kernels for factor models, written so the compiler vectorises them.
//!
//! Callers wrap hot loops in [`with_simd`], which runs them under the best instruction set
//! the CPU offers (AVX2 + FMA on most x86-64 machines). Only code inlined into that context
//! gets the wider instructions, so every kernel here is `#[inline(always)]` and callers pass
//! closures marked `#[inline(always)]` too. They use plain multiply and
//! add rather than `mul_add`, which becomes a slow library call wherever FMA is unavailable.

use rayon::prelude::*;

/// Runs `f` compiled for the widest SIMD instruction set available at run time.
#[inline(always)]
pub fn with_simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Dot product of two equal-length slices, with eight independent partial sums (one AVX
/// register).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let mut a_chunks = a.chunks_exact(8);
    let mut b_chunks = b.chunks_exact(8);
    for (x, y) in (&mut a_chunks).zip(&mut b_chunks) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    // A plain left-to-right sum: a pairwise tree here makes the vectoriser split the
    // accumulator into 128-bit halves with shuffles in the hot loop.
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in a_chunks.remainder().iter().zip(b_chunks.remainder()) {
        sum += x * y;
    }
    sum
}

/// `y += alpha * x`.
#[inline(always)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * *xi;
    }
}

/// `out = m · v` for a symmetric `k × k` matrix `m`, accumulated as `Σ_j v_j · m_j` (rows
/// equal columns), which has no dependency chain between terms.
#[inline(always)]
pub fn symv(m: &[f32], v: &[f32], out: &mut [f32]) {
    let k = v.len();
    out.iter_mut().for_each(|o| *o = 0.0);
    for (row, &vj) in m.chunks_exact(k).zip(v) {
        axpy(vj, row, out);
    }
}

/// The Gram matrix `Fᵀ F` of a row-major `n × k` factor matrix, as a row-major `k × k`.
pub fn gram(factors: &[f32], k: usize) -> Vec<f32> {
    const ROWS_PER_TASK: usize = 2048;
    factors
        .par_chunks(ROWS_PER_TASK * k)
        .map(|block| {
            with_simd(
                #[inline(always)]
                || {
                    let mut g = vec![0f32; k * k];
                    for row in block.chunks_exact(k) {
                        for (i, &ri) in row.iter().enumerate() {
                            axpy(ri, row, &mut g[i * k..(i + 1) * k]);
                        }
                    }
                    g
                },
            )
        })
        .reduce(
            || vec![0f32; k * k],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_hand_values() {
        let a: Vec<f32> = (1..=11).map(|v| v as f32).collect();
        // 1² + 2² + … + 11² = 506.
        assert_eq!(
            with_simd(
                #[inline(always)]
                || dot(&a, &a)
            ),
            506.0
        );
        let mut y = vec![1.0; 3];
        axpy(2.0, &[1.0, 2.0, 3.0], &mut y);
        assert_eq!(y, [3.0, 5.0, 7.0]);
        // F = [[1, 2], [3, 4]]: FᵀF = [[10, 14], [14, 20]].
        assert_eq!(gram(&[1.0, 2.0, 3.0, 4.0], 2), [10.0, 14.0, 14.0, 20.0]);
        let mut out = [7.0; 2];
        symv(&[10.0, 14.0, 14.0, 20.0], &[1.0, -1.0], &mut out);
        assert_eq!(out, [-4.0, -6.0]);
        // Lengths that exercise the 8-wide blocks and the scalar tail.
        for n in [1, 7, 8, 31, 32, 33, 64, 77] {
            let a: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32).collect();
            let expected: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), expected, "n = {n}");
        }
    }
}
