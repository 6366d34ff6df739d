//! Experiment statistics: pure functions over per-arm counts, sums and per-person values.
//!
//! Laid out after GrowthBook's `gbstats`: each function states its formula and reference, and
//! the unit tests pin literal values from a reference implementation (SciPy, NumPy, gbstats'
//! own test case). Nothing here does I/O or panics; an undefined result (too few people, no
//! variance, a zero baseline, a level outside (0, 1)) is `None`.
//!
//! - Fixed-horizon comparison of two arms: [`welch`] for per-person means, [`ratio_delta`] for
//!   ratio metrics (clicks per exposure).
//! - Peeking-safe comparison: [`welch_sequential`].
//! - Checks and corrections: [`srm`] (sample-ratio mismatch), [`holm`] (many comparisons).
//! - Variance reduction: [`winsorize`], [`cuped_theta`] and [`cuped_adjust`].
//! - Planning: [`relative_mde`] and [`power`].
//! - Offline model comparison on the same people: [`paired_bootstrap`].
//!
//! Conventions: `alpha` is the two-sided significance level, in (0, 1); an interval covers
//! with probability 1 − `alpha`; "control" is the baseline and an effect is treatment minus
//! control (absolute) or treatment / control − 1 (relative, a lift).

use rand::{Rng, SeedableRng, rngs::StdRng};

pub use dist::normal_quantile;
use dist::{chi2_sf, normal_cdf, normal_critical, normal_two_sided_p, t_critical, t_two_sided_p};

mod dist;
#[cfg(test)]
mod tests;

/// Below this p-value [`srm`] reports a sample-ratio mismatch: the arms' sizes are so far from
/// the configured shares that assignment or logging is broken and the results are not to be
/// trusted. 0.001 is the usual threshold (GrowthBook, Fabijan et al. 2019, "Diagnosing Sample
/// Ratio Mismatch in Online Controlled Experiments").
pub const SRM_ALPHA: f64 = 0.001;

/// Summary of the per-person values of one arm: n, Σx and Σx².
///
/// Enough for the mean and variance, so the store can keep running sums instead of values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Number of people, n.
    pub n: f64,
    /// Σx, the sum of the per-person values.
    pub sum: f64,
    /// Σx², the sum of their squares.
    pub sum_sq: f64,
}

impl Sample {
    /// The summary of `values`, one per person.
    pub fn from_values(values: &[f64]) -> Sample {
        values.iter().fold(Sample::default(), |sample, &x| Sample {
            n: sample.n + 1.0,
            sum: sample.sum + x,
            sum_sq: sample.sum_sq + x * x,
        })
    }

    /// The mean Σx / n; 0 when n = 0.
    pub fn mean(&self) -> f64 {
        if self.n > 0.0 { self.sum / self.n } else { 0.0 }
    }

    /// The sample variance (Σx² − (Σx)²/n) / (n − 1); 0 when n < 2.
    ///
    /// Rounding can make the difference of sums slightly negative for constant values; that is
    /// reported as 0.
    pub fn variance(&self) -> f64 {
        if self.n < 2.0 {
            return 0.0;
        }
        let variance = (self.sum_sq - self.sum * self.sum / self.n) / (self.n - 1.0);
        if variance < 0.0 { 0.0 } else { variance }
    }

    fn is_finite(&self) -> bool {
        self.n.is_finite() && self.sum.is_finite() && self.sum_sq.is_finite()
    }
}

/// An effect estimate with its 1 − `alpha` interval and two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The point estimate.
    pub effect: f64,
    /// The lower end of the interval.
    pub lower: f64,
    /// The upper end of the interval.
    pub upper: f64,
    /// The two-sided p-value of "no effect", in [0, 1].
    pub p_value: f64,
}

/// Treatment against control, as a difference and as a lift.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Treatment − control, in the metric's unit.
    pub absolute: Estimate,
    /// Treatment / control − 1 (0.05 is a 5% lift).
    pub relative: Estimate,
}

/// A point estimate with its standard error.
#[derive(Debug, Clone, Copy)]
struct Effect {
    effect: f64,
    se: f64,
}

/// Both effects of a two-arm comparison of means, with their Welch degrees of freedom.
#[derive(Debug, Clone, Copy)]
struct MeanMoments {
    absolute: Effect,
    relative: Effect,
    df: f64,
}

impl MeanMoments {
    /// The moments behind [`welch`] and [`welch_sequential`]; `None` for the undefined cases
    /// listed on [`welch`].
    fn new(control: &Sample, treatment: &Sample) -> Option<MeanMoments> {
        if !control.is_finite() || !treatment.is_finite() || control.n < 2.0 || treatment.n < 2.0 {
            return None;
        }
        let (mean_c, mean_t) = (control.mean(), treatment.mean());
        if mean_c == 0.0 {
            return None;
        }
        let share_c = control.variance() / control.n;
        let share_t = treatment.variance() / treatment.n;
        let se_sq = share_c + share_t;
        if se_sq <= 0.0 {
            return None;
        }
        let df =
            se_sq * se_sq / (share_c * share_c / (control.n - 1.0) + share_t * share_t / (treatment.n - 1.0));
        let relative_var =
            share_t / (mean_c * mean_c) + share_c * (mean_t * mean_t) / (mean_c * mean_c * mean_c * mean_c);
        Some(MeanMoments {
            absolute: Effect { effect: mean_t - mean_c, se: se_sq.sqrt() },
            relative: Effect { effect: mean_t / mean_c - 1.0, se: relative_var.sqrt() },
            df,
        })
    }
}

/// Welch's t-test of treatment against control on per-person means, with the relative lift by
/// the delta method: GrowthBook gbstats' frequentist two-sided test.
///
/// With means m, sample variances v (n − 1 denominator) and sizes n of control (c) and
/// treatment (t):
///
/// - absolute: d = m_t − m_c, se² = v_t/n_t + v_c/n_c;
/// - relative: l = m_t/m_c − 1, se² = v_t/(n_t m_c²) + v_c m_t²/(n_c m_c⁴) (delta method);
/// - both use the Welch–Satterthwaite degrees of freedom
///   ν = (v_t/n_t + v_c/n_c)² / ((v_t/n_t)²/(n_t − 1) + (v_c/n_c)²/(n_c − 1)),
///   the interval effect ± t_{1−α/2, ν} · se and the p-value 2 P(T_ν ≥ |effect / se|).
///
/// References: Welch (1947), "The generalization of Student's problem when several different
/// population variances are involved", Biometrika 34; Satterthwaite (1946); for the lift,
/// Deng, Knoblich & Lu (2018), "Applying the Delta Method in Metric Analytics", KDD.
///
/// `None` when an arm has n < 2, the control mean is 0, both variances are 0, an input is not
/// finite or `alpha` is outside (0, 1). A relative standard error of 0 (treatment mean 0 with
/// no variance) gives a point interval and p-value 0.
pub fn welch(control: &Sample, treatment: &Sample, alpha: f64) -> Option<Comparison> {
    let moments = MeanMoments::new(control, treatment)?;
    let critical = t_critical(alpha, moments.df)?;
    let two_sided_p = |t: f64| t_two_sided_p(t, moments.df);
    Some(Comparison {
        absolute: estimate(moments.absolute, critical, two_sided_p)?,
        relative: estimate(moments.relative, critical, two_sided_p)?,
    })
}

/// Anytime-valid (peeking-safe) version of [`welch`]: intervals that hold simultaneously at
/// every sample size, so the experiment may be looked at, and stopped, at any time.
///
/// The effects and standard errors are those of [`welch`]. With n = n_c + n_t people so far,
/// the per-person variance s² = se² · n and the tuning size N = `tuning_n`, the interval is
/// effect ± w with
///
/// ```text
/// w = s · sqrt( 2 (n ρ² + 1) / (n² ρ²) · ln( sqrt(n ρ² + 1) / α ) ),
/// ρ = sqrt( (−2 ln α + ln(−2 ln α + 1)) / N ),
/// ```
///
/// the two-sided normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon (2021),
/// "Time-uniform, nonparametric, nonasymptotic confidence sequences", Annals of Statistics 49,
/// used as an asymptotic confidence sequence (Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas,
/// "Time-uniform central limit theory and asymptotic confidence sequences", arXiv:2103.06476),
/// as GrowthBook's sequential testing does. The interval is always wider than the
/// fixed-horizon one; ρ puts its relative cost lowest near n = N (about 1.55 times the
/// fixed-horizon width at α = 0.05), so `tuning_n` should be the total number of people
/// expected at the end of the experiment. The relative lift uses its delta-method se.
///
/// The p-value is the smallest α at which the interval excludes 0, found by bisection on ln α
/// over (10⁻¹², 1) (w falls as α grows); it is 1 when the interval contains 0 at every α and
/// 10⁻¹² when it excludes 0 at every α searched. So the interval at `alpha` excludes 0 exactly
/// when the p-value is below `alpha`.
///
/// `None` in the cases of [`welch`] and when `tuning_n` is not positive and finite.
pub fn welch_sequential(
    control: &Sample,
    treatment: &Sample,
    alpha: f64,
    tuning_n: f64,
) -> Option<Comparison> {
    if !(is_level(alpha) && tuning_n > 0.0 && tuning_n.is_finite()) {
        return None;
    }
    let moments = MeanMoments::new(control, treatment)?;
    let n = control.n + treatment.n;
    Some(Comparison {
        absolute: sequence_estimate(moments.absolute, n, tuning_n, alpha)?,
        relative: sequence_estimate(moments.relative, n, tuning_n, alpha)?,
    })
}

/// Per-person numerator and denominator sums of one arm of a ratio metric (clicks per
/// exposure): n, Σx, Σx², Σy, Σy² and Σxy with x the numerator and y the denominator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RatioSample {
    /// Number of people, n.
    pub n: f64,
    /// Σx, the numerators' sum.
    pub sum_num: f64,
    /// Σx².
    pub sum_sq_num: f64,
    /// Σy, the denominators' sum.
    pub sum_den: f64,
    /// Σy².
    pub sum_sq_den: f64,
    /// Σxy.
    pub sum_cross: f64,
}

impl RatioSample {
    /// The summary of per-person `(numerator, denominator)` pairs.
    pub fn from_pairs(pairs: &[(f64, f64)]) -> RatioSample {
        pairs.iter().fold(RatioSample::default(), |sample, &(x, y)| RatioSample {
            n: sample.n + 1.0,
            sum_num: sample.sum_num + x,
            sum_sq_num: sample.sum_sq_num + x * x,
            sum_den: sample.sum_den + y,
            sum_sq_den: sample.sum_sq_den + y * y,
            sum_cross: sample.sum_cross + x * y,
        })
    }

    /// The ratio R = Σx / Σy; `None` when Σy = 0 or a sum is not finite.
    pub fn ratio(&self) -> Option<f64> {
        let ratio = self.sum_num / self.sum_den;
        (self.sum_den != 0.0 && ratio.is_finite()).then_some(ratio)
    }

    /// The delta-method variance of [`RatioSample::ratio`]:
    ///
    /// ```text
    /// Var(R) = (1/n) (σ²_x/μ_y² − 2 μ_x σ_xy/μ_y³ + μ_x² σ²_y/μ_y⁴)
    /// ```
    ///
    /// with means μ = Σ/n and sample (co)variances σ with denominator n − 1 (Deng, Knoblich &
    /// Lu 2018, "Applying the Delta Method in Metric Analytics", KDD). `None` when n < 2 or the
    /// ratio is undefined.
    pub fn ratio_variance(&self) -> Option<f64> {
        self.ratio()?;
        if self.n < 2.0 {
            return None;
        }
        let n = self.n;
        let (mean_x, mean_y) = (self.sum_num / n, self.sum_den / n);
        let var_x = (self.sum_sq_num - self.sum_num * self.sum_num / n) / (n - 1.0);
        let var_y = (self.sum_sq_den - self.sum_den * self.sum_den / n) / (n - 1.0);
        let cov_xy = (self.sum_cross - self.sum_num * self.sum_den / n) / (n - 1.0);
        let mean_y_sq = mean_y * mean_y;
        let variance = (var_x / mean_y_sq - 2.0 * mean_x * cov_xy / (mean_y_sq * mean_y)
            + mean_x * mean_x * var_y / (mean_y_sq * mean_y_sq))
            / n;
        // The bracket is the sample variance of x − R y over μ_y², never negative except by
        // rounding.
        let variance = if variance < 0.0 { 0.0 } else { variance };
        variance.is_finite().then_some(variance)
    }
}

/// Compares ratio metrics (Σx / Σy per arm, such as clicks per exposure with people as the
/// randomisation unit) by the delta method.
///
/// With R and Var(R) per arm from [`RatioSample::ratio`] and
/// [`RatioSample::ratio_variance`]:
///
/// - absolute: R_t − R_c, se² = Var(R_t) + Var(R_c);
/// - relative: R_t/R_c − 1, se² = Var(R_t)/R_c² + R_t² Var(R_c)/R_c⁴.
///
/// Intervals and p-values use the standard normal (effect ± z_{1−α/2} se, p = 2 P(Z ≥
/// |effect/se|)), as the delta method is itself a large-sample approximation; with every
/// denominator 1 this is [`welch`] with the normal in place of Student's t. Reference: Deng,
/// Knoblich & Lu (2018), "Applying the Delta Method in Metric Analytics", KDD.
///
/// `None` when an arm has n < 2 or Σy = 0, the control ratio is 0, both variances are 0 or
/// `alpha` is outside (0, 1).
pub fn ratio_delta(control: &RatioSample, treatment: &RatioSample, alpha: f64) -> Option<Comparison> {
    if !is_level(alpha) {
        return None;
    }
    let (ratio_c, var_c) = (control.ratio()?, control.ratio_variance()?);
    let (ratio_t, var_t) = (treatment.ratio()?, treatment.ratio_variance()?);
    if ratio_c == 0.0 || var_c + var_t <= 0.0 {
        return None;
    }
    let relative_var = var_t / (ratio_c * ratio_c) + ratio_t * ratio_t * var_c / ratio_c.powi(4);
    let critical = normal_critical(alpha);
    let two_sided_p = |z: f64| Some(normal_two_sided_p(z));
    Some(Comparison {
        absolute: estimate(
            Effect { effect: ratio_t - ratio_c, se: (var_t + var_c).sqrt() },
            critical,
            two_sided_p,
        )?,
        relative: estimate(
            Effect { effect: ratio_t / ratio_c - 1.0, se: relative_var.sqrt() },
            critical,
            two_sided_p,
        )?,
    })
}

/// A sample-ratio-mismatch check: Pearson's chi-square goodness of fit of the arms' sizes
/// against their configured shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Srm {
    /// χ² = Σ (o_i − e_i)² / e_i.
    pub chi2: f64,
    /// Degrees of freedom: the number of arms compared minus 1.
    pub df: usize,
    /// P(χ²_df ≥ chi2); below [`SRM_ALPHA`] the assignment is suspect.
    pub p_value: f64,
}

/// Tests whether the observed arm sizes `observed` fit the configured `shares` (same order).
///
/// Shares are normalised to sum to 1 over the arms kept; arms with share 0 are left out
/// entirely (their people are not counted). With N the people in the kept arms, e_i = N ·
/// share_i and χ² = Σ (o_i − e_i)² / e_i on k − 1 degrees of freedom (Pearson 1900; as
/// `scipy.stats.chisquare`).
///
/// `None` when the lengths differ, a share is negative or not finite, fewer than 2 arms have a
/// positive share, or the kept arms have no people.
pub fn srm(observed: &[u64], shares: &[f64]) -> Option<Srm> {
    if observed.len() != shares.len() || shares.iter().any(|s| !(s.is_finite() && *s >= 0.0)) {
        return None;
    }
    let kept: Vec<(f64, f64)> =
        observed.iter().zip(shares).filter(|(_, s)| **s > 0.0).map(|(&o, &s)| (o as f64, s)).collect();
    let total: f64 = kept.iter().map(|(o, _)| o).sum();
    let share_sum: f64 = kept.iter().map(|(_, s)| s).sum();
    if kept.len() < 2 || total <= 0.0 {
        return None;
    }
    let chi2: f64 = kept
        .iter()
        .map(|&(o, s)| {
            let expected = total * s / share_sum;
            (o - expected) * (o - expected) / expected
        })
        .sum();
    let df = kept.len() - 1;
    Some(Srm { chi2, df, p_value: chi2_sf(chi2, df as f64)? })
}

/// Holm–Bonferroni adjusted p-values, in the order given.
///
/// With the m p-values sorted ascending, p_(1) ≤ … ≤ p_(m), the adjusted value of p_(i) is
/// max_{j ≤ i} min(1, (m − j + 1) p_(j)); rejecting where it is below α controls the
/// family-wise error rate at α (Holm 1979, "A simple sequentially rejective multiple test
/// procedure", Scandinavian Journal of Statistics 6). A NaN stays NaN, counts towards m and
/// is ranked last.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (p_values[a], p_values[b]);
        pa.is_nan().cmp(&pb.is_nan()).then(pa.total_cmp(&pb))
    });
    let mut adjusted = vec![f64::NAN; m];
    let mut running_max = 0.0_f64;
    for (rank, &index) in order.iter().enumerate() {
        let p = p_values[index];
        if p.is_nan() {
            continue;
        }
        running_max = running_max.max(((m - rank) as f64 * p).min(1.0));
        adjusted[index] = running_max;
    }
    adjusted
}

/// Caps every value above the `percentile` quantile (0.99 for the 99th percentile) at that
/// quantile, in place, and returns the cap.
///
/// The quantile interpolates linearly between order statistics, as NumPy's default
/// `np.quantile(values, percentile)`: with the values sorted x_(0) ≤ … ≤ x_(n−1) and
/// h = (n − 1) · percentile, it is x_(⌊h⌋) + (h − ⌊h⌋)(x_(⌊h⌋+1) − x_(⌊h⌋)). Only the upper
/// tail is capped: per-person revenue and activity are skewed to the right.
///
/// `None`, leaving `values` untouched, when `values` is empty, contains a value that is not
/// finite, or `percentile` is outside [0, 1].
pub fn winsorize(values: &mut [f64], percentile: f64) -> Option<f64> {
    if values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cap = quantile_sorted(&sorted, percentile)?;
    for value in values.iter_mut() {
        if *value > cap {
            *value = cap;
        }
    }
    Some(cap)
}

/// The CUPED coefficient θ = cov(x, y) / var(x) of a metric y on its pre-experiment covariate
/// x (the same metric before assignment), one pair per person, pooled over all arms.
///
/// Deng, Xu, Kohavi & Walker (2013), "Improving the Sensitivity of Online Controlled
/// Experiments by Utilizing Pre-Experiment Data", WSDM. Pooling keeps θ the same in every arm,
/// so [`cuped_adjust`] shifts no arm's expected difference.
///
/// `Some(0.0)` (no adjustment) when x is constant; `None` when the lengths differ, there are
/// fewer than 2 people, or a value is not finite.
pub fn cuped_theta(y: &[f64], x: &[f64]) -> Option<f64> {
    if y.len() != x.len() || y.len() < 2 || y.iter().chain(x).any(|v| !v.is_finite()) {
        return None;
    }
    let n = y.len() as f64;
    let (mean_x, mean_y) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut cov, mut var_x) = (0.0, 0.0);
    for (yi, xi) in y.iter().zip(x) {
        cov += (xi - mean_x) * (yi - mean_y);
        var_x += (xi - mean_x) * (xi - mean_x);
    }
    Some(if var_x > 0.0 { cov / var_x } else { 0.0 })
}

/// The CUPED-adjusted values y_i − θ (x_i − x̄), one per person, same order.
///
/// `theta` comes from [`cuped_theta`] and `x_mean` is the mean covariate pooled over all arms,
/// so the adjustment has mean zero over the experiment and each arm's mean moves only by
/// chance imbalance in x. The adjusted values go into [`Sample::from_values`] and [`welch`] as
/// usual; their variance is (1 − ρ²_xy) times the original at the best θ. `None` when the
/// lengths differ.
pub fn cuped_adjust(y: &[f64], x: &[f64], theta: f64, x_mean: f64) -> Option<Vec<f64>> {
    (y.len() == x.len()).then(|| y.iter().zip(x).map(|(yi, xi)| yi - theta * (xi - x_mean)).collect())
}

/// The smallest relative effect (lift) that the test detects with probability `power` at the
/// current sizes and variances:
///
/// ```text
/// MDE = (z_{1−α/2} + z_{power}) · se_rel,   se_rel = sqrt( v_t/(n_t m_c²) + v_c/(n_c m_c²) )
/// ```
///
/// with z the standard normal quantiles and se_rel the standard error of the lift when the
/// arms' means are equal (the delta-method se of [`welch`] at m_t = m_c). This is the usual
/// two-sided normal approximation that ignores the far tail (e.g. Kohavi, Tang & Xu 2020,
/// "Trustworthy Online Controlled Experiments", ch. 17). Use it on an experiment that is
/// running to tell "no effect" from "too small to see".
///
/// `None` when an arm has n < 2, the control mean is 0, both variances are 0, an input is not
/// finite, or `alpha` or `power` is outside (0, 1).
pub fn relative_mde(control: &Sample, treatment: &Sample, alpha: f64, power: f64) -> Option<f64> {
    if !is_level(alpha) || !is_level(power) {
        return None;
    }
    let se = null_relative_se(control, treatment)?;
    Some((normal_critical(alpha) + normal_quantile(power)) * se)
}

/// The probability of detecting a true lift `relative_effect` at the current sizes and
/// variances: Φ(|δ| / se_rel − z_{1−α/2}), with se_rel as in [`relative_mde`], of which this
/// is the inverse (`power(…, relative_mde(…, p)) = p`).
///
/// `None` in the cases of [`relative_mde`] or when `relative_effect` is not finite.
pub fn power(control: &Sample, treatment: &Sample, alpha: f64, relative_effect: f64) -> Option<f64> {
    if !is_level(alpha) || !relative_effect.is_finite() {
        return None;
    }
    let se = null_relative_se(control, treatment)?;
    Some(normal_cdf(relative_effect.abs() / se - normal_critical(alpha)))
}

/// A paired bootstrap of the mean difference between two models (or any two treatments)
/// measured on the same people: `a[i]` and `b[i]` are person i's values under each.
///
/// The effect is mean(b) − mean(a) = mean(d) with d_i = b_i − a_i. Each of `resamples`
/// replicates draws n people with replacement and takes the mean of their d; the interval is
/// the α/2 and 1 − α/2 percentiles of the replicates (interpolated as in [`winsorize`]) and
/// the p-value is 2 · min(share of replicates ≤ 0, share ≥ 0), capped at 1 (Efron &
/// Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13 and 16). Pairing removes the
/// between-person variance that an unpaired comparison would carry.
///
/// Deterministic for a given `seed` (`StdRng` of `rand` 0.8; another `rand` version may draw
/// differently). Costs `resamples` × n draws.
///
/// `None` when the lengths differ, there are no people, `resamples` is 0, a value is not
/// finite or `alpha` is outside (0, 1).
pub fn paired_bootstrap(a: &[f64], b: &[f64], resamples: usize, seed: u64, alpha: f64) -> Option<Estimate> {
    if a.len() != b.len() || a.is_empty() || resamples == 0 || !is_level(alpha) {
        return None;
    }
    let diffs: Vec<f64> = a.iter().zip(b).map(|(ai, bi)| bi - ai).collect();
    if diffs.iter().any(|d| !d.is_finite()) {
        return None;
    }
    let n = diffs.len();
    let effect = diffs.iter().sum::<f64>() / n as f64;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut replicates: Vec<f64> =
        (0..resamples).map(|_| (0..n).map(|_| diffs[rng.gen_range(0..n)]).sum::<f64>() / n as f64).collect();
    replicates.sort_by(f64::total_cmp);
    let at_most_zero = replicates.iter().filter(|&&m| m <= 0.0).count();
    let at_least_zero = replicates.iter().filter(|&&m| m >= 0.0).count();
    Some(Estimate {
        effect,
        lower: quantile_sorted(&replicates, alpha / 2.0)?,
        upper: quantile_sorted(&replicates, 1.0 - alpha / 2.0)?,
        p_value: (2.0 * at_most_zero.min(at_least_zero) as f64 / resamples as f64).min(1.0),
    })
}

/// The estimate effect ± `critical` · se with the p-value `two_sided_p(effect / se)`; a zero
/// se gives a point interval with p-value 0 (or 1 for a zero effect). `None` if anything is
/// not finite.
fn estimate(effect: Effect, critical: f64, two_sided_p: impl Fn(f64) -> Option<f64>) -> Option<Estimate> {
    let Effect { effect, se } = effect;
    let p_value = if se > 0.0 {
        two_sided_p(effect / se)?
    } else if effect == 0.0 {
        1.0
    } else {
        0.0
    };
    let half_width = critical * se;
    let estimate = Estimate {
        effect,
        lower: effect - half_width,
        upper: effect + half_width,
        p_value: p_value.clamp(0.0, 1.0),
    };
    [estimate.effect, estimate.lower, estimate.upper, p_value]
        .iter()
        .all(|v| v.is_finite())
        .then_some(estimate)
}

/// The lowest level searched for an anytime-valid p-value.
const SEQUENTIAL_P_FLOOR: f64 = 1e-12;
/// The highest level searched: at α = 1 exactly, ρ = 0 and the width is 0/0.
const SEQUENTIAL_P_CEILING: f64 = 1.0 - 1e-9;

/// The confidence-sequence estimate of [`welch_sequential`] for one effect.
fn sequence_estimate(effect: Effect, n: f64, tuning_n: f64, alpha: f64) -> Option<Estimate> {
    let Effect { effect, se } = effect;
    let half_width = sequence_half_width(se, n, tuning_n, alpha);
    let excludes_zero = |alpha: f64| sequence_half_width(se, n, tuning_n, alpha) < effect.abs();
    let p_value = if !excludes_zero(SEQUENTIAL_P_CEILING) {
        1.0
    } else if excludes_zero(SEQUENTIAL_P_FLOOR) {
        SEQUENTIAL_P_FLOOR
    } else {
        // The width falls as α grows, so the levels that exclude 0 form an interval
        // (p, 1); bisect on ln α, keeping `high` on the excluding side.
        let (mut low, mut high) = (SEQUENTIAL_P_FLOOR.ln(), SEQUENTIAL_P_CEILING.ln());
        for _ in 0..100 {
            let mid = 0.5 * (low + high);
            if excludes_zero(mid.exp()) {
                high = mid;
            } else {
                low = mid;
            }
        }
        high.exp()
    };
    let estimate = Estimate {
        effect,
        lower: effect - half_width,
        upper: effect + half_width,
        p_value: p_value.clamp(0.0, 1.0),
    };
    (effect.is_finite() && half_width.is_finite()).then_some(estimate)
}

/// The half-width w of the confidence sequence documented on [`welch_sequential`], written
/// with `ln_1p` so that it stays accurate as α approaches 1.
fn sequence_half_width(se: f64, n: f64, tuning_n: f64, alpha: f64) -> f64 {
    let minus_two_ln_alpha = -2.0 * alpha.ln();
    let rho_sq = (minus_two_ln_alpha + minus_two_ln_alpha.ln_1p()) / tuning_n;
    let n_rho_sq = n * rho_sq;
    let log_term = 0.5 * n_rho_sq.ln_1p() - alpha.ln();
    se * n.sqrt() * (2.0 * (n_rho_sq + 1.0) / (n * n_rho_sq) * log_term).sqrt()
}

/// The lift's standard error when both arms have the control's mean, for [`relative_mde`] and
/// [`power`]: sqrt(v_t/(n_t m_c²) + v_c/(n_c m_c²)).
fn null_relative_se(control: &Sample, treatment: &Sample) -> Option<f64> {
    if !control.is_finite() || !treatment.is_finite() || control.n < 2.0 || treatment.n < 2.0 {
        return None;
    }
    let mean_c = control.mean();
    let se =
        ((treatment.variance() / treatment.n + control.variance() / control.n) / (mean_c * mean_c)).sqrt();
    (se > 0.0 && se.is_finite()).then_some(se)
}

/// The linearly interpolated `q` quantile of ascending `sorted` values (NumPy's default
/// method); `None` when `sorted` is empty or `q` is outside [0, 1].
fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let below = h.floor();
    let low = *sorted.get(below as usize)?;
    match sorted.get(below as usize + 1) {
        Some(high) if h > below => Some(low + (h - below) * (high - low)),
        _ => Some(low),
    }
}

/// Whether `level` is a usable significance level or power, in the open interval (0, 1).
fn is_level(level: f64) -> bool {
    level > 0.0 && level < 1.0
}
