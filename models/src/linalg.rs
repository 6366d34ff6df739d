//! Small dense kernels for factor models, written so the compiler vectorises them.
//!
//! Callers wrap hot loops in [`with_simd`], which runs them under the best instruction set
//! the CPU offers (AVX2 + FMA on most x86-64 machines); every kernel here is
//! `#[inline(always)]` so it is compiled inside that context.

use rayon::prelude::*;

/// Runs `f` compiled for the widest SIMD instruction set available at run time.
#[inline(always)]
pub fn with_simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Dot product of two equal-length slices, with eight independent accumulators.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut sum = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in chunks * 8..n {
        sum = a[i].mul_add(b[i], sum);
    }
    sum
}

/// `y += alpha * x`.
#[inline(always)]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = alpha.mul_add(*xi, *yi);
    }
}

/// `out = m · v` for a row-major `k × k` matrix `m`.
#[inline(always)]
pub fn symv(m: &[f32], v: &[f32], out: &mut [f32]) {
    let k = v.len();
    for (row, o) in m.chunks_exact(k).zip(out.iter_mut()) {
        *o = dot(row, v);
    }
}

/// The Gram matrix `Fᵀ F` of a row-major `n × k` factor matrix, as a row-major `k × k`.
pub fn gram(factors: &[f32], k: usize) -> Vec<f32> {
    const ROWS_PER_TASK: usize = 2048;
    factors
        .par_chunks(ROWS_PER_TASK * k)
        .map(|block| {
            with_simd(|| {
                let mut g = vec![0f32; k * k];
                for row in block.chunks_exact(k) {
                    for (i, &ri) in row.iter().enumerate() {
                        axpy(ri, row, &mut g[i * k..(i + 1) * k]);
                    }
                }
                g
            })
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
        assert_eq!(with_simd(|| dot(&a, &a)), 506.0);
        let mut y = vec![1.0; 3];
        axpy(2.0, &[1.0, 2.0, 3.0], &mut y);
        assert_eq!(y, [3.0, 5.0, 7.0]);
        // F = [[1, 2], [3, 4]]: FᵀF = [[10, 14], [14, 20]].
        assert_eq!(gram(&[1.0, 2.0, 3.0, 4.0], 2), [10.0, 14.0, 14.0, 20.0]);
        let mut out = [0.0; 2];
        symv(&[10.0, 14.0, 14.0, 20.0], &[1.0, -1.0], &mut out);
        assert_eq!(out, [-4.0, -6.0]);
    }
}
