//! The ALS conjugate-gradient step's kernels on each instruction set the CPU has: the
//! products of one vector with a person's 40 gathered factor rows (64 factors) and the
//! weighted sum of those rows, as one step does them (`kernels/cg_step/{scalar,avx2,avx512}`),
//! and the 64 × 64 symmetric product with the Gram matrix (`kernels/symv/...`).

use criterion::{Criterion, criterion_group, criterion_main};
use models::algorithms::linalg::{add_weighted_rows, row_dots, symv};
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

fn kernels(c: &mut Criterion) {
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
