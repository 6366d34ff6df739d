//! The ALS conjugate-gradient step's kernels on each instruction set the CPU has: the
//! products of one vector with a person's 40 gathered factor rows (64 factors) and the
//! weighted sum of those rows, as one step does them (`kernels/cg_step/{scalar,avx2,avx512}`),
//! and the 64 × 64 symmetric product with the Gram matrix (`kernels/symv/...`); and ALS's
//! full scan of 10,000 items × 64 factors, `f32` rows against the half-precision blocks
//! serving reads (`kernels/full_scan/{f32_rows,half_blocks}`). And the selection of an
//! answer from 10,000 scores in 20 categories, without a cap and with at most 2 per category,
//! for a page of 6 and one of 1,000 (`kernels/top_k/{plain,capped}/{6,1000}`).

use criterion::{Criterion, criterion_group, criterion_main};
use models::algorithms::half_scan::{HalfFactors, round_to_half};
use models::algorithms::linalg::{add_weighted_rows, row_dots, symv, with_simd};
use models::rank::{Cap, top_k, top_k_capped};
use pulp::{Simd, WithSimd};

const K: usize = 64;
const ROWS: usize = 40;

struct Step<'a> {
    rows: &'a [f32],
    gram: &'a [f32],
    v: &'a [f32],
    weights: &'a mut [f32],
    out: &'a mut [f32],
    with_gram: bool,
}

impl WithSimd for Step<'_> {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        if self.with_gram {
            symv(simd, self.gram, self.v, self.out);
        } else {
            row_dots(simd, self.rows, K, self.v, self.weights);
            add_weighted_rows(simd, self.rows, self.weights, self.out);
        }
        self.out[0]
    }
}

fn run(c: &mut Criterion, name: &str, call: &dyn Fn(Step<'_>) -> f32) {
    let rows: Vec<f32> = (0..ROWS * K).map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5).collect();
    let gram: Vec<f32> = (0..K * K).map(|i| ((i * 13) % 29) as f32 / 29.0).collect();
    let v: Vec<f32> = (0..K).map(|i| (i % 7) as f32 / 7.0).collect();
    let (mut weights, mut out) = (vec![0f32; ROWS], vec![0f32; K]);
    for (bench, with_gram) in [("cg_step", false), ("symv", true)] {
        c.bench_function(&format!("kernels/{bench}/{name}"), |b| {
            b.iter(|| {
                call(Step {
                    rows: &rows,
                    gram: &gram,
                    v: &v,
                    weights: &mut weights,
                    out: &mut out,
                    with_gram,
                })
            })
        });
    }
}

/// One person's scores over 10,000 items: `row_dots` over row-major `f32` factors (the
/// widest instruction set), and `HalfFactors::dots` (AVX-512 only) over the same values.
fn full_scan(c: &mut Criterion) {
    const ITEMS: usize = 10_000;
    let mut factors: Vec<f32> = (0..ITEMS * K).map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5).collect();
    round_to_half(&mut factors);
    let x: Vec<f32> = (0..K).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect();
    let mut out = vec![0f32; ITEMS];
    c.bench_function("kernels/full_scan/f32_rows", |b| {
        b.iter(|| {
            with_simd(RowDots { rows: &factors, v: &x, out: &mut out });
            out[0]
        })
    });
    let half = HalfFactors::new(&factors, K).expect("rounded factors are half numbers");
    if half.dots(&x, &mut out) {
        c.bench_function("kernels/full_scan/half_blocks", |b| {
            b.iter(|| {
                half.dots(&x, &mut out);
                out[0]
            })
        });
    }
}

struct RowDots<'a> {
    rows: &'a [f32],
    v: &'a [f32],
    out: &'a mut [f32],
}

impl WithSimd for RowDots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        row_dots(simd, self.rows, K, self.v, self.out);
    }
}

fn selection(c: &mut Criterion) {
    // Scores from a fixed linear congruential sequence: the same on every run.
    let mut state = 42u64;
    let scores: Vec<f32> = (0..10_000)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let cap = Cap { max: 2, category: |i: usize| Some((i % 20) as u32), taken: |_: u32| 0 };
    for k in [6, 1_000] {
        c.bench_function(&format!("kernels/top_k/plain/{k}"), |b| {
            b.iter(|| top_k(std::hint::black_box(&scores), k, |i| i % 7 != 0).len())
        });
        c.bench_function(&format!("kernels/top_k/capped/{k}"), |b| {
            b.iter(|| top_k_capped(std::hint::black_box(&scores), k, &cap, |i| i % 7 != 0).len())
        });
    }
}

fn kernels(c: &mut Criterion) {
    selection(c);
    full_scan(c);
    run(c, "scalar", &|step| Simd::vectorize(pulp::Scalar::new(), step));
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(simd) = pulp::x86::V3::try_new() {
            run(c, "avx2", &|step| Simd::vectorize(simd, step));
        }
        if let Some(simd) = pulp::x86::V4::try_new() {
            run(c, "avx512", &|step| Simd::vectorize(simd, step));
        }
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
