//! Distribution functions for the experiment statistics: Student's t, the standard normal and
//! chi-square, over statrs' special functions, checked so that nothing panics or loops
//! without bound.

use std::f64::consts::SQRT_2;

use statrs::function::beta::checked_beta_reg;
use statrs::function::erf::{erfc, erfc_inv};
use statrs::function::gamma::{checked_gamma_ur, ln_gamma};

use super::is_level;

/// Above this many degrees of freedom Student's t is taken as the standard normal. The
/// two-sided p-values then differ by under 10⁻⁶ relative for |t| ≤ 4 (7·10⁻⁷ at ν = 10⁸), while
/// the incomplete beta function, whose ln Γ(ν/2) terms cancel, is no more accurate there.
const NORMAL_DF: f64 = 1e8;

/// P(|T_ν| ≥ |t|) for Student's t with ν = `df` degrees of freedom: the regularised incomplete
/// beta function I_x(ν/2, 1/2) with x = ν/(ν + t²) (Abramowitz & Stegun 26.7.1), or
/// 1 − I_{1−x}(1/2, ν/2) where x is close to 1. statrs would take that complement itself,
/// but from a rounded x; here 1 − x = t²/(ν + t²) is computed directly. `None` for a NaN `t`
/// or `df` ≤ 0.
pub(super) fn t_two_sided_p(t: f64, df: f64) -> Option<f64> {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return None;
    }
    if df > NORMAL_DF {
        return Some(normal_two_sided_p(t));
    }
    if t.is_infinite() {
        return Some(0.0);
    }
    let (a, b) = (df / 2.0, 0.5);
    let x = df / (df + t * t);
    // statrs switches to the complement at x ≥ (a + 1)/(a + b + 2) (Numerical Recipes 6.4).
    if x < (a + 1.0) / (a + b + 2.0) {
        checked_beta_reg(a, b, x).ok()
    } else {
        checked_beta_reg(b, a, t * t / (df + t * t)).ok().map(|complement| 1.0 - complement)
    }
}

/// t_{1−α/2, ν}, the upper α/2 point of Student's t with ν = `df`: the t > 0 with
/// P(|T_ν| ≥ t) = α. `None` for `alpha` outside (0, 1), `df` ≤ 0, or a root beyond f64.
///
/// Solved by Newton's method on ln P(|T_ν| ≥ t) = ln α (slope −2 f_ν(t) / P), started from the
/// Cornish–Fisher term z + (z³ + z)/(4ν) (Abramowitz & Stegun 26.7.5) and kept inside a
/// bracket that falls back to bisection, so it always ends within a fixed number of steps.
/// (statrs' `inv_beta_reg` is accurate only to about 10⁻⁵ at large ν and can stall.)
pub(super) fn t_critical(alpha: f64, df: f64) -> Option<f64> {
    if !is_level(alpha) || df.is_nan() || df <= 0.0 {
        return None;
    }
    let z = normal_critical(alpha);
    if df > NORMAL_DF {
        return Some(z);
    }
    // P(|T| ≥ t) falls from 1 at t = 0 to 0, so [low, high] brackets the root once
    // P(high) ≤ α; doubling reaches f64::MAX within about a thousand steps.
    let (mut low, mut high) = (0.0, z.max(1.0));
    while t_two_sided_p(high, df)? > alpha {
        low = high;
        high *= 2.0;
        if !high.is_finite() {
            return None;
        }
    }
    let guess = z + (z * z * z + z) / (4.0 * df);
    let mut t = if guess > low && guess < high { guess } else { 0.5 * (low + high) };
    for _ in 0..200 {
        let p = t_two_sided_p(t, df)?;
        if p > alpha {
            low = t;
        } else {
            high = t;
        }
        let newton = t + (p.ln() - alpha.ln()) * p / (2.0 * t_density(t, df));
        let next = if newton > low && newton < high { newton } else { 0.5 * (low + high) };
        if (next - t).abs() <= 1e-15 * t || high - low <= 1e-15 * high {
            return Some(next);
        }
        t = next;
    }
    Some(t)
}

/// The density of Student's t with ν = `df`: Γ((ν+1)/2) / (√(νπ) Γ(ν/2)) (1 + t²/ν)^(−(ν+1)/2).
fn t_density(t: f64, df: f64) -> f64 {
    let log_norm = ln_gamma((df + 1.0) / 2.0) - ln_gamma(df / 2.0) - 0.5 * (df * std::f64::consts::PI).ln();
    (log_norm - (df + 1.0) / 2.0 * (t * t / df).ln_1p()).exp()
}

/// P(|Z| ≥ |z|) = erfc(|z| / √2) for the standard normal Z.
pub(super) fn normal_two_sided_p(z: f64) -> f64 {
    erfc(z.abs() / SQRT_2)
}

/// z_{1−α/2} = √2 erfc⁻¹(α), the upper α/2 point of the standard normal, for α in (0, 1).
pub(super) fn normal_critical(alpha: f64) -> f64 {
    SQRT_2 * erfc_inv(alpha)
}

/// Φ⁻¹(p) = −√2 erfc⁻¹(2p), the standard normal quantile: `normal_quantile(0.975)` ≈ 1.96.
///
/// −∞ at 0, +∞ at 1, NaN outside [0, 1]. For a small upper tail, Φ⁻¹(1 − q) = −Φ⁻¹(q) is
/// more accurate than rounding 1 − q first.
pub fn normal_quantile(p: f64) -> f64 {
    if !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    -SQRT_2 * erfc_inv(2.0 * p)
}

/// Φ(x) = erfc(−x / √2) / 2, the standard normal distribution function.
pub(super) fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / SQRT_2)
}

/// P(χ²_k ≥ x) = Q(k/2, x/2), the regularised upper incomplete gamma function; `None` for a
/// NaN `x` or `df` ≤ 0.
pub(super) fn chi2_sf(x: f64, df: f64) -> Option<f64> {
    if x.is_nan() || df.is_nan() || df <= 0.0 {
        return None;
    }
    if x <= 0.0 {
        return Some(1.0);
    }
    if x.is_infinite() {
        return Some(0.0);
    }
    checked_gamma_ur(df / 2.0, x / 2.0).ok()
}
