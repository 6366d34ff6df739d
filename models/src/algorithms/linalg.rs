//! Small dense kernels for factor models, written against `pulp`'s portable SIMD types.
//!
//! [`with_simd`] runs an operation under the widest instruction set the CPU offers, chosen
//! at run time: AVX-512 (16 floats per register) where the CPU has it, else AVX2 + FMA (8),
//! else scalar code. The operation receives the instruction set as a [`Simd`] token and
//! passes it to the kernels here, which are `#[inline(always)]` so that they compile into
//! the caller's instruction set. Multiply-adds are fused where the instruction set has
//! FMA (`mul_add_e`), plain multiply and add elsewhere.
//!
//! Two shapes recur in ALS and EASE: products of one vector with many rows ([`row_dots`]),
//! and weighted sums of many rows ([`add_weighted_rows`]). The second walks the output in
//! blocks of four registers and keeps two independent sets of partial sums in registers
//! across the rows, so that the output is written once per block, not once per row, and
//! consecutive rows do not wait on each other's additions.

use std::sync::atomic::{AtomicU8, Ordering};

use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Reads one value from every cache line of each slice, so the lines the caller is about to
/// walk are already on their way: the walks themselves (one scattered addition per entry)
/// wait on each list's first lines before their loads can run ahead, list after list, while
/// these reads, independent of each other, are all in flight at once.
pub fn touch<'a, T: Copy + 'a>(slices: impl IntoIterator<Item = &'a [T]>) {
    let step = (64 / std::mem::size_of::<T>().max(1)).max(1);
    for slice in slices {
        for value in slice.iter().step_by(step) {
            std::hint::black_box(*value);
        }
    }
}

/// Runs `op` compiled for the widest SIMD instruction set available at run time, or the
/// one [`set_level`] chose. A closure without arguments is an operation too (it gets no
/// token, only the compile flags).
#[inline(always)]
pub fn with_simd<Op: WithSimd>(op: Op) -> Op::Output {
    #[cfg(target_arch = "x86_64")]
    match level() {
        Level::Widest => {}
        Level::Avx512 => {
            if let Some(simd) = pulp::x86::V4::try_new() {
                return Simd::vectorize(simd, op);
            }
        }
        Level::Avx2 => {
            if let Some(simd) = pulp::x86::V3::try_new() {
                return Simd::vectorize(simd, op);
            }
        }
        Level::Scalar => return Simd::vectorize(pulp::Scalar::new(), op),
    }
    pulp::Arch::new().dispatch(op)
}

/// The AVX-512 token, where the CPU has it and [`set_level`] did not choose a narrower
/// set: for kernels written against AVX-512 instructions that `pulp`'s portable types lack.
#[cfg(target_arch = "x86_64")]
pub fn avx512() -> Option<pulp::x86::V4> {
    match level() {
        Level::Widest | Level::Avx512 => pulp::x86::V4::try_new(),
        Level::Avx2 | Level::Scalar => None,
    }
}

/// The instruction set [`with_simd`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Level {
    /// The widest the CPU has (the default).
    Widest,
    /// AVX-512 (x86-64-v4), where available, else the widest.
    Avx512,
    /// AVX2 + FMA (x86-64-v3), where available, else the widest.
    Avx2,
    /// No SIMD.
    Scalar,
}

impl Level {
    /// The level named `widest`, `avx512`, `avx2` or `scalar`.
    pub fn from_name(name: &str) -> Option<Level> {
        match name {
            "widest" => Some(Level::Widest),
            "avx512" => Some(Level::Avx512),
            "avx2" => Some(Level::Avx2),
            "scalar" => Some(Level::Scalar),
            _ => None,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Widest as u8);

/// Chooses the instruction set for every later [`with_simd`] (for comparing them on one
/// machine, and for CPUs whose wide registers do not pay); the binaries take it from
/// `OMNIREC_SIMD`.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Sets the level named by `choice` (`None`: leave the widest). Returns a warning to log
/// for a name that is not a level (the widest stays).
pub fn choose_level(choice: Option<&str>) -> Option<String> {
    let name = choice?;
    match Level::from_name(name) {
        Some(level) => {
            set_level(level);
            None
        }
        None => Some(format!("SIMD level {name:?} is not widest, avx512, avx2 or scalar; using the widest")),
    }
}

/// The instruction set [`with_simd`] uses.
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Avx512,
        2 => Level::Avx2,
        3 => Level::Scalar,
        _ => Level::Widest,
    }
}

/// Dot product of two slices over their common length, with two independent partial sums.
#[inline(always)]
pub fn dot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a_head, a_tail) = S::as_simd_f32s(&a[..n]);
    let (b_head, b_tail) = S::as_simd_f32s(&b[..n]);
    let (mut acc0, mut acc1) = (simd.splat_f32s(0.0), simd.splat_f32s(0.0));
    let mut a_pairs = a_head.chunks_exact(2);
    let mut b_pairs = b_head.chunks_exact(2);
    for (x, y) in (&mut a_pairs).zip(&mut b_pairs) {
        acc0 = simd.mul_add_e_f32s(x[0], y[0], acc0);
        acc1 = simd.mul_add_e_f32s(x[1], y[1], acc1);
    }
    for (&x, &y) in a_pairs.remainder().iter().zip(b_pairs.remainder()) {
        acc0 = simd.mul_add_e_f32s(x, y, acc0);
    }
    let mut sum = simd.reduce_sum_f32s(simd.add_f32s(acc0, acc1));
    for (x, y) in a_tail.iter().zip(b_tail) {
        sum += x * y;
    }
    sum
}

/// [`dot`]`(src, v)`, copying `src` into `dst` on the way (over the common length): one
/// pass over a row that is gathered for later passes.
#[inline(always)]
pub fn copy_dot<S: Simd>(simd: S, src: &[f32], v: &[f32], dst: &mut [f32]) -> f32 {
    let n = src.len().min(v.len()).min(dst.len());
    let (s_head, s_tail) = S::as_simd_f32s(&src[..n]);
    let (v_head, v_tail) = S::as_simd_f32s(&v[..n]);
    let (d_head, d_tail) = S::as_mut_simd_f32s(&mut dst[..n]);
    let mut acc = simd.splat_f32s(0.0);
    for ((&x, &y), d) in s_head.iter().zip(v_head).zip(d_head.iter_mut()) {
        *d = x;
        acc = simd.mul_add_e_f32s(x, y, acc);
    }
    let mut sum = simd.reduce_sum_f32s(acc);
    for ((&x, y), d) in s_tail.iter().zip(v_tail).zip(d_tail.iter_mut()) {
        *d = x;
        sum += x * y;
    }
    sum
}

/// `y += alpha * x` over the common length.
#[inline(always)]
pub fn axpy<S: Simd>(simd: S, alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (x_head, x_tail) = S::as_simd_f32s(&x[..n]);
    let (y_head, y_tail) = S::as_mut_simd_f32s(&mut y[..n]);
    let a = simd.splat_f32s(alpha);
    for (y, &x) in y_head.iter_mut().zip(x_head) {
        *y = simd.mul_add_e_f32s(a, x, *y);
    }
    for (y, x) in y_tail.iter_mut().zip(x_tail) {
        *y += alpha * x;
    }
}

/// `out[i] = rows_i · v` for the `out.len()` rows of length `k` at the start of the
/// row-major `rows`.
#[inline(always)]
pub fn row_dots<S: Simd>(simd: S, rows: &[f32], k: usize, v: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(k.max(1))) {
        *o = dot(simd, row, v);
    }
}

/// `out += Σ_i w[i] · rows_i` for the `w.len()` rows of length `k = out.len()` at the start
/// of the row-major `rows`.
#[inline(always)]
pub fn add_weighted_rows<S: Simd>(simd: S, rows: &[f32], w: &[f32], out: &mut [f32]) {
    let k = out.len().max(1);
    add_weighted(simd, rows.chunks_exact(k).zip(w).map(|(row, &wi)| (row, wi)), out);
}

/// `out += Σ w · row` over the `(row, w)` pairs, rows at least `out.len()` long (extra
/// values are ignored). The pairs are walked once per block of four output registers.
#[inline(always)]
pub fn add_weighted<'a, S: Simd, I>(simd: S, pairs: I, out: &mut [f32])
where
    I: Iterator<Item = (&'a [f32], f32)> + Clone,
{
    let k = out.len();
    let (out_head, out_tail) = S::as_mut_simd_f32s(out);
    let lanes = k - out_tail.len();
    let zero = simd.splat_f32s(0.0);
    let mut blocks = out_head.chunks_exact_mut(4);
    let mut first = 0;
    for block in &mut blocks {
        let (mut a, mut b) = ([zero; 4], [zero; 4]);
        let mut rows = pairs.clone();
        while let Some((row0, w0)) = rows.next() {
            let (head0, _) = S::as_simd_f32s(&row0[..lanes]);
            let w0 = simd.splat_f32s(w0);
            a[0] = simd.mul_add_e_f32s(w0, head0[first], a[0]);
            a[1] = simd.mul_add_e_f32s(w0, head0[first + 1], a[1]);
            a[2] = simd.mul_add_e_f32s(w0, head0[first + 2], a[2]);
            a[3] = simd.mul_add_e_f32s(w0, head0[first + 3], a[3]);
            let Some((row1, w1)) = rows.next() else { break };
            let (head1, _) = S::as_simd_f32s(&row1[..lanes]);
            let w1 = simd.splat_f32s(w1);
            b[0] = simd.mul_add_e_f32s(w1, head1[first], b[0]);
            b[1] = simd.mul_add_e_f32s(w1, head1[first + 1], b[1]);
            b[2] = simd.mul_add_e_f32s(w1, head1[first + 2], b[2]);
            b[3] = simd.mul_add_e_f32s(w1, head1[first + 3], b[3]);
        }
        for (o, (a, b)) in block.iter_mut().zip(a.iter().zip(&b)) {
            *o = simd.add_f32s(*o, simd.add_f32s(*a, *b));
        }
        first += 4;
    }
    // Fewer than four registers left: one at a time.
    for (j, o) in blocks.into_remainder().iter_mut().enumerate() {
        let mut acc = zero;
        for (row, w) in pairs.clone() {
            let (head, _) = S::as_simd_f32s(&row[..lanes]);
            acc = simd.mul_add_e_f32s(simd.splat_f32s(w), head[first + j], acc);
        }
        *o = simd.add_f32s(*o, acc);
    }
    // The last `k mod lanes` values.
    for (row, w) in pairs {
        for (o, x) in out_tail.iter_mut().zip(&row[lanes..k]) {
            *o += w * x;
        }
    }
}

/// [`add_weighted`] as an operation for [`with_simd`].
pub struct WeightedRows<'o, I> {
    /// The `(row, weight)` pairs.
    pub rows: I,
    /// The sum is added here.
    pub out: &'o mut [f32],
}

impl<'a, I: Iterator<Item = (&'a [f32], f32)> + Clone> WithSimd for WeightedRows<'_, I> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        add_weighted(simd, self.rows, self.out);
    }
}

/// `out = m · v` for a symmetric `k × k` matrix `m`, accumulated as `Σ_j v_j · m_j` (rows
/// equal columns).
#[inline(always)]
pub fn symv<S: Simd>(simd: S, m: &[f32], v: &[f32], out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    add_weighted_rows(simd, m, v, out);
}

/// The Gram matrix `Fᵀ F` of a row-major `n × k` factor matrix, as a row-major `k × k`.
pub fn gram(factors: &[f32], k: usize) -> Vec<f32> {
    const ROWS_PER_TASK: usize = 2048;
    struct Block<'a> {
        rows: &'a [f32],
        k: usize,
    }
    impl WithSimd for Block<'_> {
        type Output = Vec<f32>;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
            let k = self.k;
            let mut g = vec![0f32; k * k];
            for row in self.rows.chunks_exact(k) {
                for (i, &ri) in row.iter().enumerate() {
                    axpy(simd, ri, row, &mut g[i * k..(i + 1) * k]);
                }
            }
            g
        }
    }
    factors.par_chunks(ROWS_PER_TASK * k.max(1)).map(|rows| with_simd(Block { rows, k })).reduce(
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
    use pulp::Scalar;

    /// Every kernel on the given instruction set, for lengths that exercise the register
    /// blocks, the odd registers and the scalar tail.
    struct Kernels;

    /// What one instruction set computed: per length, dot, copy-dot (and whether the copy
    /// is exact), axpy, and weighted row sums.
    type Results = Vec<(f32, f32, bool, Vec<f32>, Vec<f32>)>;

    const LENGTHS: [usize; 12] = [1, 7, 8, 15, 16, 31, 32, 33, 64, 77, 128, 200];

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7 + seed * 13) % 11) as f32 * 0.25 - 1.25).collect()
    }

    impl WithSimd for Kernels {
        type Output = Results;
        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) -> Results {
            LENGTHS
                .iter()
                .map(|&k| {
                    let (a, b) = (data(k, 1), data(k, 2));
                    let mut copy = vec![0.0; k];
                    let copied = copy_dot(simd, &a, &b, &mut copy);
                    let mut y = data(k, 3);
                    axpy(simd, 0.5, &a, &mut y);
                    let rows = data(5 * k, 4);
                    let w = [1.0, -2.0, 0.5, 3.0, -0.25];
                    let mut out = data(k, 5);
                    add_weighted_rows(simd, &rows, &w, &mut out);
                    (dot(simd, &a, &b), copied, copy == a, y, out)
                })
                .collect()
        }
    }

    /// The same in f64, element by element.
    fn reference() -> Vec<(f64, Vec<f64>, Vec<f64>)> {
        LENGTHS
            .iter()
            .map(|&k| {
                let (a, b) = (data(k, 1), data(k, 2));
                let dot: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
                let y = data(k, 3).iter().zip(&a).map(|(y, x)| f64::from(*y) + 0.5 * f64::from(*x)).collect();
                let rows = data(5 * k, 4);
                let w = [1.0, -2.0, 0.5, 3.0, -0.25];
                let out = (0..k)
                    .map(|j| {
                        f64::from(data(k, 5)[j])
                            + (0..5).map(|i| w[i] * f64::from(rows[i * k + j])).sum::<f64>()
                    })
                    .collect();
                (dot, y, out)
            })
            .collect()
    }

    fn check(name: &str, results: Results) {
        for ((k, got), (dot, y, out)) in LENGTHS.iter().zip(results).zip(reference()) {
            let close = |a: f32, b: f64| (f64::from(a) - b).abs() <= 1e-4 * (1.0 + b.abs());
            assert!(close(got.0, dot), "{name}: dot of {k}: {} vs {dot}", got.0);
            assert!(close(got.1, dot) && got.2, "{name}: copy_dot of {k}");
            assert!(got.3.iter().zip(&y).all(|(a, b)| close(*a, *b)), "{name}: axpy of {k}");
            assert!(got.4.iter().zip(&out).all(|(a, b)| close(*a, *b)), "{name}: weighted rows of {k}");
        }
    }

    #[test]
    fn every_instruction_set_matches_the_f64_reference() {
        check("scalar", Simd::vectorize(Scalar::new(), Kernels));
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(simd) = pulp::x86::V3::try_new() {
                check("avx2", Simd::vectorize(simd, Kernels));
            }
            if let Some(simd) = pulp::x86::V4::try_new() {
                check("avx512", Simd::vectorize(simd, Kernels));
            }
        }
        check("dispatched", with_simd(Kernels));
    }

    #[test]
    fn levels_are_chosen_by_name() {
        assert_eq!(Level::from_name("avx2"), Some(Level::Avx2));
        assert!(choose_level(Some("avx9")).unwrap().contains("not widest, avx512, avx2 or scalar"));
        // (Only the default is set here: other tests run beside this one.)
        assert_eq!(choose_level(Some("widest")), None);
        assert_eq!((choose_level(None), level()), (None, Level::Widest));
    }

    #[test]
    fn kernels_match_hand_values() {
        // F = [[1, 2], [3, 4]]: FᵀF = [[10, 14], [14, 20]].
        assert_eq!(gram(&[1.0, 2.0, 3.0, 4.0], 2), [10.0, 14.0, 14.0, 20.0]);
        let mut out = [7.0; 2];
        symv(Scalar::new(), &[10.0, 14.0, 14.0, 20.0], &[1.0, -1.0], &mut out);
        assert_eq!(out, [-4.0, -6.0]);
        let a: Vec<f32> = (1..=11).map(|v| v as f32).collect();
        // 1² + 2² + … + 11² = 506.
        assert_eq!(dot(Scalar::new(), &a, &a), 506.0);
    }
}
