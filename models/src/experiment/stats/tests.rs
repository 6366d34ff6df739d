//! Unit tests of the experiment statistics against SciPy, NumPy and gbstats values.

use super::*;

/// Asserts |actual − expected| ≤ tolerance, naming the quantity.
#[track_caller]
fn assert_close(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected} (tolerance {tolerance})"
    );
}

/// Asserts an estimate equals (effect, lower, upper, p) within `tolerance`.
#[track_caller]
fn assert_estimate(estimate: &Estimate, expected: [f64; 4], tolerance: f64) {
    assert_close(estimate.effect, expected[0], tolerance, "effect");
    assert_close(estimate.lower, expected[1], tolerance, "lower");
    assert_close(estimate.upper, expected[2], tolerance, "upper");
    assert_close(estimate.p_value, expected[3], tolerance, "p-value");
}

#[test]
fn t_distribution_matches_scipy() {
    // (df, stats.t.ppf(0.975, df), stats.t.ppf(0.995, df), 2*stats.t.sf(2.1, df),
    //  2*stats.t.sf(0.3, df), 2*stats.t.sf(7.0, df)) from SciPy 1.17.
    let cases = [
        (
            1.0,
            12.706204736174694,
            63.656741162871526,
            0.282926056243018,
            0.8144528418445154,
            0.0903344706017331,
        ),
        (
            2.5,
            3.5746548420036817,
            7.163728138948783,
            0.14450244475484378,
            0.7873423714951973,
            0.010572369527591413,
        ),
        (
            10.0,
            2.228138851986274,
            3.16927267261695,
            0.06207724420221853,
            0.7703206075657986,
            3.715592281685689e-05,
        ),
        (
            5841.742032093565,
            1.9603701569544807,
            2.5766711860350027,
            0.03577161611604241,
            0.7641878297458806,
            2.8467596668624533e-12,
        ),
        (
            1e5,
            1.9599877075346095,
            2.575878469908375,
            0.035731339632296834,
            0.7641777791903376,
            2.5756556678160065e-12,
        ),
        (
            1e8,
            1.9599640082627663,
            2.5758293527143774,
            0.035728843624121286,
            0.7641771562456637,
            2.559641073577134e-12,
        ),
    ];
    for (df, q975, q995, p21, p03, p7) in cases {
        // The incomplete beta function works with 1 − ν/(ν + t²) and so loses precision as ν
        // grows: about 1e-8 relative at ν = 1e8.
        let relative = if df > 1e6 { 5e-8 } else { 1e-10 };
        assert_close(t_critical(0.05, df).unwrap(), q975, relative * q975, "t_0.975");
        assert_close(t_critical(0.01, df).unwrap(), q995, relative * q995, "t_0.995");
        assert_close(t_two_sided_p(2.1, df).unwrap(), p21, relative * p21, "p(2.1)");
        assert_close(t_two_sided_p(-2.1, df).unwrap(), p21, relative * p21, "p(-2.1)");
        assert_close(t_two_sided_p(0.3, df).unwrap(), p03, relative * p03, "p(0.3)");
        assert_close(t_two_sided_p(7.0, df).unwrap(), p7, relative.max(1e-9) * p7, "p(7)");
        assert_close(t_two_sided_p(0.0, df).unwrap(), 1.0, 1e-12, "p(0)");
    }
    // Near t = 0 (x = ν/(ν + t²) close to 1) the complement branch: 2*stats.t.sf(t, df).
    for (t, df, p) in [
        (0.01, 5e7, 0.992021287410633),
        (0.05, 1e6, 0.9601223983092544),
        (0.3, 3.0, 0.783763292039919),
        (1e-4, 10.0, 0.9999221783233495),
    ] {
        // The ln Γ(ν/2) terms cancel to about 1e-10 at ν = 5e7.
        assert_close(t_two_sided_p(t, df).unwrap(), p, 1e-9, "p near 1");
    }
    assert_eq!(t_critical(0.0, 10.0), None);
    assert_eq!(t_critical(1.0, 10.0), None);
    assert_eq!(t_critical(f64::NAN, 10.0), None);
    assert_eq!(t_critical(0.05, 0.0), None);
    assert_eq!(t_two_sided_p(f64::NAN, 10.0), None);
    assert_eq!(t_two_sided_p(f64::INFINITY, 10.0), Some(0.0));
}

#[test]
fn normal_and_chi_square_match_scipy() {
    // stats.norm.ppf(0.975), .ppf(0.8), .ppf(0.05), stats.norm.cdf(0.7).
    assert_close(normal_critical(0.05), 1.959963984540054, 1e-12, "z_0.975");
    assert_close(normal_quantile(0.8), 0.8416212335729143, 1e-12, "z_0.8");
    assert_close(normal_quantile(0.05), -1.6448536269514729, 1e-12, "z_0.05");
    assert_close(normal_cdf(0.7), 0.758036347776927, 1e-12, "Phi(0.7)");
    // statrs' erfc is good to about 1e-10 relative here.
    assert_close(normal_two_sided_p(-1.959963984540054), 0.05, 1e-11, "2(1 - Phi(1.96))");
    assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
    assert_eq!(normal_quantile(1.0), f64::INFINITY);
    assert!(normal_quantile(1.5).is_nan() && normal_quantile(f64::NAN).is_nan());
    // stats.chi2.sf(3.2, 1), stats.chi2.sf(50.0, 4), stats.chi2.sf(0.01, 7).
    assert_close(chi2_sf(3.2, 1.0).unwrap(), 0.07363827012030258, 1e-12, "chi2 sf 1");
    assert_close(chi2_sf(50.0, 4.0).unwrap(), 3.610865404890647e-10, 1e-19, "chi2 sf 4");
    assert_close(chi2_sf(0.01, 7.0).unwrap(), 0.999999999243059, 1e-12, "chi2 sf 7");
    assert_eq!(chi2_sf(0.0, 3.0), Some(1.0));
    assert_eq!(chi2_sf(f64::NAN, 3.0), None);
}

#[test]
fn sample_moments() {
    let sample = Sample::from_values(&[1.0, 2.0, 4.0]);
    assert_eq!(sample, Sample { n: 3.0, sum: 7.0, sum_sq: 21.0 });
    // Mean 7/3; variance (21 - 49/3) / 2 = 7/3.
    assert_close(sample.mean(), 7.0 / 3.0, 1e-15, "mean");
    assert_close(sample.variance(), 7.0 / 3.0, 1e-14, "variance");
    assert_eq!(Sample::default().mean(), 0.0);
    assert_eq!(Sample::from_values(&[5.0]).variance(), 0.0);
    // Σx² − (Σx)²/n cancels; what is left of a constant's variance is rounding.
    assert!(Sample::from_values(&[0.1; 1000]).variance() < 1e-15);
}

/// gbstats' own test case (`test_frequentist.py`, TwoSidedTTest): per-person sums of two arms.
fn gbstats_arms() -> (Sample, Sample) {
    let control = Sample { n: 3407.0, sum: 1396.87, sum_sq: 52377.9767 };
    let treatment = Sample { n: 3461.0, sum: 2422.7, sum_sq: 134698.29 };
    (control, treatment)
}

#[test]
fn welch_reproduces_gbstats() {
    let (control, treatment) = gbstats_arms();
    let comparison = welch(&control, &treatment, 0.05).unwrap();
    // gbstats' expected values, rounded to 5 decimals.
    assert_estimate(&comparison.relative, [0.70732, -0.03526, 1.44989, 0.06191], 5e-6);
    assert_estimate(&comparison.absolute, [0.29, 0.04538, 0.53462, 0.02016], 5e-6);
    // The same formulas evaluated with scipy.stats.t at full precision (df = 5841.742032093565).
    assert_estimate(
        &comparison.relative,
        [0.7073170731707317, -0.03526008906611777, 1.449894235407581, 0.0619118274561836],
        1e-10,
    );
    assert_estimate(
        &comparison.absolute,
        [0.29, 0.04537789255929012, 0.5346221074407098, 0.020158402643586978],
        1e-10,
    );
}

#[test]
fn welch_matches_scipy_ttest_ind() {
    // r = scipy.stats.ttest_ind(b, a, equal_var=False); r.confidence_interval(0.95), r.pvalue
    // with a = [3.1, 2.4, 5.6, 4.4, 3.9, 2.2, 4.8], b = [4.2, 5.1, 6.3, 3.8, 5.9, 6.6, 4.7, 5.5].
    let control = Sample::from_values(&[3.1, 2.4, 5.6, 4.4, 3.9, 2.2, 4.8]);
    let treatment = Sample::from_values(&[4.2, 5.1, 6.3, 3.8, 5.9, 6.6, 4.7, 5.5]);
    let comparison = welch(&control, &treatment, 0.05).unwrap();
    assert_estimate(
        &comparison.absolute,
        [1.491071428571428, 0.18919229293353257, 2.792950564209323, 0.028316448995790937],
        1e-9,
    );
    // Relative, by hand with scipy.stats.t (no SciPy function does the delta method):
    // l = mt/mc - 1; se = sqrt(vt/(nt*mc**2) + vc*mt**2/(nc*mc**4)) with var(ddof=1);
    // l ± stats.t.ppf(0.975, df)*se, 2*stats.t.sf(abs(l/se), df), df = 11.392347860465973.
    assert_estimate(
        &comparison.relative,
        [0.3953598484848484, -0.04324753595995234, 0.8339672329296491, 0.07291786532802835],
        1e-9,
    );

    // A decrease at alpha = 0.1: a = [10, 12, 9, 11, 14, 13], b = [9, 8, 11, 7, 10],
    // r.confidence_interval(0.90); df = 8.98936170212766.
    let control = Sample::from_values(&[10.0, 12.0, 9.0, 11.0, 14.0, 13.0]);
    let treatment = Sample::from_values(&[9.0, 8.0, 11.0, 7.0, 10.0]);
    let comparison = welch(&control, &treatment, 0.10).unwrap();
    assert_estimate(
        &comparison.absolute,
        [-2.5, -4.40822153569213, -0.591778464307871, 0.039803082024136245],
        1e-9,
    );
    assert_estimate(
        &comparison.relative,
        [-0.21739130434782605, -0.36499958074765615, -0.06978302794799598, 0.02441483141629839],
        1e-9,
    );
}

#[test]
fn welch_undefined_cases() {
    let (control, treatment) = gbstats_arms();
    let single = Sample::from_values(&[1.0]);
    let constant = Sample::from_values(&[2.0, 2.0, 2.0]);
    let zero_mean = Sample::from_values(&[-1.0, 1.0]);
    assert_eq!(welch(&single, &treatment, 0.05), None);
    assert_eq!(welch(&control, &single, 0.05), None);
    assert_eq!(welch(&zero_mean, &treatment, 0.05), None);
    assert_eq!(welch(&constant, &constant, 0.05), None);
    assert_eq!(welch(&control, &treatment, 0.0), None);
    assert_eq!(welch(&control, &treatment, f64::NAN), None);
    assert_eq!(welch(&Sample { sum: f64::NAN, ..control }, &treatment, 0.05), None);
    // One arm without variance is fine: the other carries the standard error.
    let comparison = welch(&constant, &Sample::from_values(&[1.0, 3.0, 5.0]), 0.05).unwrap();
    assert_close(comparison.absolute.effect, 1.0, 1e-12, "effect");
    // Treatment all zero: the lift is -100% with no delta-method variance, a point interval.
    let comparison =
        welch(&Sample::from_values(&[1.0, 2.0, 3.0]), &Sample::from_values(&[0.0, 0.0]), 0.05).unwrap();
    assert_eq!(comparison.relative, Estimate { effect: -1.0, lower: -1.0, upper: -1.0, p_value: 0.0 });
}

#[test]
fn t_critical_inverts_the_two_sided_p() {
    for df in [0.2, 0.5, 1.0, 3.0, 30.0, 1e3, 1e6, 5e8, 1e10] {
        for alpha in [1e-10, 1e-4, 0.01, 0.05, 0.5, 0.99] {
            let t = t_critical(alpha, df).unwrap();
            let p = t_two_sided_p(t, df).unwrap();
            assert_close(p, alpha, 1e-7 * alpha, &format!("P(|T| >= t_crit) at df {df}"));
        }
    }
    // Closed forms: ν = 1 gives t = cot(πα/2); ν = 2 gives t² = 2(1 − α)² / (α(2 − α)).
    assert_close(
        t_critical(0.05, 1.0).unwrap(),
        1.0 / (std::f64::consts::FRAC_PI_2 * 0.05).tan(),
        1e-10,
        "cauchy",
    );
    assert_close(t_critical(0.1, 2.0).unwrap(), (2.0 * 0.81 / (0.1 * 1.9_f64)).sqrt(), 1e-12, "nu 2");
}

#[test]
fn welch_sequential_is_a_wider_interval_with_a_consistent_p_value() {
    let (control, treatment) = gbstats_arms();
    let fixed = welch(&control, &treatment, 0.05).unwrap();
    let sequential = welch_sequential(&control, &treatment, 0.05, 5000.0).unwrap();
    // By hand in Python, with n = 6868, se² and the lift's se² as in `welch`:
    // rho = math.sqrt((-2*math.log(a) + math.log(-2*math.log(a) + 1)) / N)
    // w = math.sqrt(se**2*n) * math.sqrt(2*(n*rho**2 + 1)/(n**2*rho**2) * math.log(math.sqrt(n*rho**2 + 1)/a))
    // with a = 0.05, N = 5000; the p-value is math.exp(scipy.optimize.brentq(lambda la:
    // w_at(math.exp(la)) - abs(effect), math.log(1e-12), math.log(1 - 1e-9), xtol=1e-14)).
    assert_estimate(
        &sequential.absolute,
        [0.29, -0.0894100955383455, 0.6694100955383455, 0.25946455614833347],
        1e-9,
    );
    assert_estimate(
        &sequential.relative,
        [0.7073170731707317, -0.4444237691289097, 1.859057915470373, 0.5395076538801022],
        1e-9,
    );
    for (fixed, sequential) in [(fixed.absolute, sequential.absolute), (fixed.relative, sequential.relative)]
    {
        assert_eq!(sequential.effect, fixed.effect);
        assert!(sequential.lower < fixed.lower && sequential.upper > fixed.upper);
        assert!(sequential.lower < sequential.effect && sequential.effect < sequential.upper);
        assert!(sequential.p_value > fixed.p_value);
    }
}

#[test]
fn welch_sequential_excludes_zero_exactly_below_its_p_value() {
    let (control, treatment) = gbstats_arms();
    // A range of evidence: shrink the treatment's mean towards the control's, and a big arm.
    for shift in [0.0, 0.2, 0.5, 0.8, 1.0] {
        let treatment = Sample { sum: treatment.sum - shift * 0.29 * treatment.n, ..treatment };
        for tuning_n in [500.0, 6868.0, 1e6] {
            let at_level = |alpha: f64| welch_sequential(&control, &treatment, alpha, tuning_n).unwrap();
            let p = at_level(0.05).absolute.p_value;
            assert!((0.0..=1.0).contains(&p));
            for alpha in [0.001, 0.01, 0.05, 0.1, 0.2, 0.5] {
                let estimate = at_level(alpha).absolute;
                let excludes_zero = estimate.lower > 0.0 || estimate.upper < 0.0;
                assert_eq!(excludes_zero, p < alpha, "shift {shift}, N {tuning_n}, alpha {alpha}, p {p}");
                // The p-value does not depend on the level the interval was asked for.
                assert_eq!(estimate.p_value, p);
            }
        }
    }
    let big = Sample { n: 1e6, sum: 1e6 * 0.41, sum_sq: 1e6 * 20.0 };
    let bigger = Sample { n: 1e6, sum: 1e6 * 0.61, sum_sq: 1e6 * 40.0 };
    assert_eq!(welch_sequential(&big, &bigger, 0.05, 1e5).unwrap().absolute.p_value, SEQUENTIAL_P_FLOOR);
    assert_eq!(welch_sequential(&big, &big, 0.05, 1e5).unwrap().absolute.p_value, 1.0);
    assert_eq!(welch_sequential(&control, &treatment, 0.05, 0.0), None);
    assert_eq!(welch_sequential(&control, &treatment, 0.05, f64::INFINITY), None);
    assert_eq!(welch_sequential(&control, &treatment, 1.0, 5000.0), None);
}

/// Two arms of a ratio metric, numerator x (clicks) and denominator y (exposures) per person.
fn ratio_arms() -> (RatioSample, RatioSample) {
    let control =
        [(2.0, 5.0), (0.0, 1.0), (1.0, 4.0), (3.0, 6.0), (0.0, 2.0), (1.0, 3.0), (4.0, 7.0), (2.0, 4.0)];
    let treatment = [
        (3.0, 4.0),
        (1.0, 2.0),
        (2.0, 5.0),
        (4.0, 6.0),
        (1.0, 3.0),
        (0.0, 1.0),
        (5.0, 6.0),
        (3.0, 5.0),
        (2.0, 3.0),
    ];
    (RatioSample::from_pairs(&control), RatioSample::from_pairs(&treatment))
}

#[test]
fn ratio_delta_matches_numpy() {
    let (control, treatment) = ratio_arms();
    // NumPy, per arm: R = x.sum()/y.sum(); mx, my = x.mean(), y.mean();
    // V = (x.var(ddof=1)/my**2 - 2*mx*np.cov(x, y, ddof=1)[0, 1]/my**3
    //      + mx**2*y.var(ddof=1)/my**4) / len(x)
    assert_close(control.ratio().unwrap(), 0.40625, 1e-15, "R_c");
    assert_close(control.ratio_variance().unwrap(), 0.003413609095982144, 1e-15, "Var R_c");
    assert_close(treatment.ratio().unwrap(), 0.6, 1e-15, "R_t");
    assert_close(treatment.ratio_variance().unwrap(), 0.00418775510204082, 1e-15, "Var R_t");
    // z = stats.norm.ppf(0.975); se = sqrt(Vt + Vc); Rt - Rc ± z*se, 2*stats.norm.sf(|d|/se);
    // relative: rel = Rt/Rc - 1, sr = sqrt(Vt/Rc**2 + Rt**2*Vc/Rc**4), rel ± z*sr.
    let comparison = ratio_delta(&control, &treatment, 0.05).unwrap();
    assert_estimate(
        &comparison.absolute,
        [0.19374999999999998, 0.022868966682069003, 0.36463103331793095, 0.026265369388368442],
        1e-10,
    );
    assert_estimate(
        &comparison.relative,
        [0.4769230769230768, -0.04345232388335585, 0.9972984777295094, 0.07244629196407082],
        1e-10,
    );
}

#[test]
fn ratio_delta_with_unit_denominators_is_welch_with_the_normal() {
    let control_values = [3.1, 2.4, 5.6, 4.4, 3.9, 2.2, 4.8];
    let treatment_values = [4.2, 5.1, 6.3, 3.8, 5.9, 6.6, 4.7, 5.5];
    let pairs = |values: &[f64]| values.iter().map(|&x| (x, 1.0)).collect::<Vec<_>>();
    let ratio = ratio_delta(
        &RatioSample::from_pairs(&pairs(&control_values)),
        &RatioSample::from_pairs(&pairs(&treatment_values)),
        0.05,
    )
    .unwrap();
    let (control, treatment) = (Sample::from_values(&control_values), Sample::from_values(&treatment_values));
    let welch = welch(&control, &treatment, 0.05).unwrap();
    let df = MeanMoments::new(&control, &treatment).unwrap().df;
    // Same effect and se; the half-widths differ by z / t and the p-values by the tail used.
    let z_over_t = normal_critical(0.05) / t_critical(0.05, df).unwrap();
    for (ratio, welch) in [(ratio.absolute, welch.absolute), (ratio.relative, welch.relative)] {
        assert_close(ratio.effect, welch.effect, 1e-12, "effect");
        let (ratio_half, welch_half) = (ratio.upper - ratio.effect, welch.upper - welch.effect);
        assert_close(ratio_half / welch_half, z_over_t, 1e-10, "half-width ratio");
        let se = welch_half / t_critical(0.05, df).unwrap();
        assert_close(ratio.p_value, normal_two_sided_p(welch.effect / se), 1e-12, "normal p");
        assert!(ratio.p_value < welch.p_value);
    }
}

#[test]
fn ratio_delta_undefined_cases() {
    let (control, treatment) = ratio_arms();
    let no_exposures = RatioSample::from_pairs(&[(0.0, 0.0), (0.0, 0.0)]);
    let no_clicks = RatioSample::from_pairs(&[(0.0, 1.0), (0.0, 2.0)]);
    assert_eq!(ratio_delta(&no_exposures, &treatment, 0.05), None);
    assert_eq!(ratio_delta(&control, &no_exposures, 0.05), None);
    assert_eq!(ratio_delta(&no_clicks, &treatment, 0.05), None);
    assert_eq!(ratio_delta(&RatioSample::from_pairs(&[(1.0, 2.0)]), &treatment, 0.05), None);
    assert_eq!(ratio_delta(&control, &treatment, 0.0), None);
    assert_eq!(no_exposures.ratio(), None);
    assert_eq!(no_clicks.ratio(), Some(0.0));
}

#[test]
fn srm_matches_scipy_chisquare() {
    // scipy.stats.chisquare([1000, 1200], [1100, 1100]).pvalue
    let check = srm(&[1000, 1200], &[0.5, 0.5]).unwrap();
    assert_close(check.chi2, 18.181818181818183, 1e-12, "chi2");
    assert_eq!(check.df, 1);
    // The brief's values to 9 decimals; SciPy's full value is 2.007865612426481e-05.
    assert_close(check.p_value, 0.000020079, 5e-10, "p 50/50");
    assert_close(check.p_value, 2.007865612426481e-05, 1e-15, "p 50/50, SciPy");
    assert!(check.p_value < SRM_ALPHA);
    // chisquare([310, 98], [306, 102]) = 0.647434186; shares need not sum to 1.
    let check = srm(&[310, 98], &[75.0, 25.0]).unwrap();
    assert_close(check.p_value, 0.647434186, 5e-10, "p 75/25");
    assert_close(check.p_value, 0.647434185701797, 1e-12, "p 75/25, SciPy");
    // chisquare([500, 500, 600], 1600 * [0.34, 0.33, 0.33]) = 0.000592638.
    let check = srm(&[500, 500, 600], &[0.34, 0.33, 0.33]).unwrap();
    assert_eq!(check.df, 2);
    assert_close(check.chi2, 14.861853832442067, 1e-10, "chi2 3 arms");
    assert_close(check.p_value, 0.000592638, 5e-10, "p 3 arms");
    assert_close(check.p_value, 0.0005926379315273186, 1e-15, "p 3 arms, SciPy");
    // A share-0 arm is left out with its people.
    assert_eq!(srm(&[1000, 7, 1200], &[0.5, 0.0, 0.5]), srm(&[1000, 1200], &[0.5, 0.5]));
    assert_eq!(srm(&[1100, 1100], &[0.5, 0.5]).unwrap().p_value, 1.0);
}

#[test]
fn srm_undefined_cases() {
    assert_eq!(srm(&[1000], &[1.0]), None);
    assert_eq!(srm(&[1000, 5], &[1.0, 0.0]), None);
    assert_eq!(srm(&[0, 0], &[0.5, 0.5]), None);
    assert_eq!(srm(&[10, 20], &[0.5]), None);
    assert_eq!(srm(&[10, 20], &[0.5, -0.5]), None);
    assert_eq!(srm(&[10, 20], &[0.5, f64::NAN]), None);
}

#[test]
fn holm_adjusts_in_input_order() {
    // Sorted 0.01, 0.03, 0.04 (m = 3): 3·0.01 = 0.03, 2·0.03 = 0.06, max(0.06, 1·0.04) = 0.06.
    let adjusted = holm(&[0.01, 0.04, 0.03]);
    for (a, e) in adjusted.iter().zip([0.03, 0.06, 0.06]) {
        assert_close(*a, e, 1e-15, "holm");
    }
    // Sorted 0.001, 0.02, 0.04, 0.5 (m = 4): 0.004, 0.06, 0.08, max(0.08, 0.5) = 0.5.
    let adjusted = holm(&[0.5, 0.001, 0.02, 0.04]);
    for (a, e) in adjusted.iter().zip([0.5, 0.004, 0.06, 0.08]) {
        assert_close(*a, e, 1e-15, "holm 4");
    }
    // Capped at 1: 2·0.6 = 1.2 → 1, then max(1, 0.7) = 1.
    assert_eq!(holm(&[0.7, 0.6]), vec![1.0, 1.0]);
    assert_eq!(holm(&[0.02]), vec![0.02]);
    assert!(holm(&[]).is_empty());
    // A NaN stays NaN, ranks last and still counts: 3·0.01 = 0.03, 2·0.02 = 0.04.
    let adjusted = holm(&[0.02, f64::NAN, 0.01]);
    assert!(adjusted[1].is_nan());
    assert_close(adjusted[0], 0.04, 1e-15, "with NaN");
    assert_close(adjusted[2], 0.03, 1e-15, "with NaN");
}

#[test]
fn winsorize_matches_numpy_quantile() {
    let values = [3.0, 1.0, 250.0, 7.0, 2.0, 9.0, 4.0, 120.0, 5.0, 6.0];
    // (percentile, np.quantile(values, percentile)); sorted: 1 2 3 4 5 6 7 9 120 250.
    for (percentile, cap) in [
        (0.99, 238.3),             // h = 8.91: 120 + 0.91·130
        (0.9, 132.99999999999994), // h = 8.1: 120 + 0.1·130
        (0.5, 5.5),
        (0.0, 1.0),
        (1.0, 250.0),
    ] {
        let mut capped = values;
        let got = winsorize(&mut capped, percentile).unwrap();
        assert_close(got, cap, 1e-9, "cap");
        // np.minimum(values, cap)
        for (c, v) in capped.iter().zip(values) {
            assert_eq!(*c, v.min(got));
        }
    }
    let mut untouched = [1.0, f64::NAN];
    assert_eq!(winsorize(&mut untouched, 0.5), None);
    assert_eq!(untouched[0], 1.0);
    assert_eq!(winsorize(&mut [1.0, f64::INFINITY], 0.5), None);
    assert_eq!(winsorize(&mut [], 0.5), None);
    assert_eq!(winsorize(&mut [1.0, 2.0], 1.5), None);
    assert_eq!(winsorize(&mut [1.0, 2.0], f64::NAN), None);
}

#[test]
fn cuped_hand_case() {
    let y = [2.0, 4.0, 3.0, 7.0, 9.0];
    let x = [1.0, 3.0, 3.0, 6.0, 7.0];
    // x − x̄ = [-3, -1, -1, 2, 3], y − ȳ = [-3, -1, -2, 2, 4]: θ = 28 / 24 = 7/6.
    let theta = cuped_theta(&y, &x).unwrap();
    assert_close(theta, 7.0 / 6.0, 1e-15, "theta");
    // y − 7/6 (x − 4) = [5.5, 31/6, 25/6, 14/3, 5.5].
    let adjusted = cuped_adjust(&y, &x, theta, 4.0).unwrap();
    for (a, e) in adjusted.iter().zip([5.5, 31.0 / 6.0, 25.0 / 6.0, 14.0 / 3.0, 5.5]) {
        assert_close(*a, e, 1e-14, "adjusted");
    }
    assert_eq!(cuped_theta(&y, &[2.0; 5]), Some(0.0));
    assert_eq!(cuped_theta(&y, &x[..4]), None);
    assert_eq!(cuped_theta(&[1.0], &[1.0]), None);
    assert_eq!(cuped_theta(&[1.0, f64::NAN], &[1.0, 2.0]), None);
    assert_eq!(cuped_adjust(&y, &x[..4], theta, 4.0), None);
}

#[test]
fn cuped_reduces_variance_and_keeps_the_mean() {
    // y = 2 + 0.8 x + noise with x and the noise uniform on [0, 10) and [-2, 2): corr ≈ 0.9.
    let mut rng = StdRng::seed_from_u64(17);
    let x: Vec<f64> = (0..2000).map(|_| rng.gen_range(0.0..10.0)).collect();
    let y: Vec<f64> = x.iter().map(|xi| 2.0 + 0.8 * xi + rng.gen_range(-2.0..2.0)).collect();
    let theta = cuped_theta(&y, &x).unwrap();
    assert_close(theta, 0.8, 0.05, "theta near the slope");
    let x_mean = x.iter().sum::<f64>() / x.len() as f64;
    let adjusted = Sample::from_values(&cuped_adjust(&y, &x, theta, x_mean).unwrap());
    let original = Sample::from_values(&y);
    assert_close(adjusted.mean(), original.mean(), 1e-12, "mean");
    // Var(y) ≈ 0.64·100/12 + 16/12 ≈ 6.67 and the adjusted ≈ 16/12 ≈ 1.33.
    assert!(adjusted.variance() < 0.3 * original.variance());
}

#[test]
fn mde_and_power_match_hand_values() {
    let (control, treatment) = gbstats_arms();
    // se0 = sqrt(vt/(nt*mc**2) + vc/(nc*mc**2)) = 0.30435032094533643;
    // (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se0.
    let mde = relative_mde(&control, &treatment, 0.05, 0.8).unwrap();
    assert_close(mde, 0.8526633602883923, 1e-10, "mde");
    // stats.norm.cdf(0.5/se0 - stats.norm.ppf(0.975)), stats.norm.cdf(0.1/se0 - stats.norm.ppf(0.95)).
    assert_close(power(&control, &treatment, 0.05, 0.5).unwrap(), 0.3755761577291392, 1e-10, "power");
    assert_close(
        power(&control, &treatment, 0.05, -0.5).unwrap(),
        0.3755761577291392,
        1e-10,
        "power, decrease",
    );
    assert_close(
        power(&control, &treatment, 0.1, 0.1).unwrap(),
        0.094039219911419,
        1e-10,
        "power, alpha 0.1",
    );
    // The one inverts the other.
    for target in [0.5, 0.8, 0.9] {
        let mde = relative_mde(&control, &treatment, 0.05, target).unwrap();
        assert_close(power(&control, &treatment, 0.05, mde).unwrap(), target, 1e-10, "power at mde");
    }
    assert_eq!(relative_mde(&control, &treatment, 0.05, 1.0), None);
    assert_eq!(relative_mde(&control, &treatment, 0.0, 0.8), None);
    assert_eq!(relative_mde(&Sample::from_values(&[-1.0, 1.0]), &treatment, 0.05, 0.8), None);
    assert_eq!(power(&control, &treatment, 0.05, f64::NAN), None);
}

#[test]
fn paired_bootstrap_identical_inputs_show_no_effect() {
    let a = [0.2, 0.5, 0.1, 0.9, 0.4, 0.3];
    let estimate = paired_bootstrap(&a, &a, 1000, 1, 0.05).unwrap();
    assert_eq!(estimate, Estimate { effect: 0.0, lower: 0.0, upper: 0.0, p_value: 1.0 });
}

#[test]
fn paired_bootstrap_sees_a_clear_shift_and_is_deterministic() {
    let mut rng = StdRng::seed_from_u64(5);
    // Per-person metrics that vary a lot between people; b is a plus 0.05 plus small noise.
    let a: Vec<f64> = (0..300).map(|_| rng.gen_range(0.0..1.0)).collect();
    let b: Vec<f64> = a.iter().map(|ai| ai + 0.05 + rng.gen_range(-0.05..0.05)).collect();
    let estimate = paired_bootstrap(&a, &b, 2000, 42, 0.05).unwrap();
    let mean_diff = b.iter().sum::<f64>() / 300.0 - a.iter().sum::<f64>() / 300.0;
    assert_close(estimate.effect, mean_diff, 1e-12, "effect");
    assert!(estimate.lower > 0.0 && estimate.lower < estimate.effect && estimate.effect < estimate.upper);
    assert_eq!(estimate.p_value, 0.0);
    // The percentile interval is close to the normal one, mean ± 1.96 sd(d)/√n.
    let diffs = Sample::from_values(&a.iter().zip(&b).map(|(ai, bi)| bi - ai).collect::<Vec<_>>());
    let half = 1.959963984540054 * (diffs.variance() / 300.0).sqrt();
    assert_close(estimate.upper - estimate.lower, 2.0 * half, 0.15 * half, "width");
    assert_eq!(paired_bootstrap(&a, &b, 2000, 42, 0.05), Some(estimate));
    assert_ne!(paired_bootstrap(&a, &b, 2000, 43, 0.05), Some(estimate));
}

#[test]
fn paired_bootstrap_p_value_counts_both_tails() {
    // Differences d = [1, -1, 1, 1]: a replicate is ≤ 0 only when at least two of its four
    // draws are the -1, so the p-value is about 2 · P(Binomial(4, 1/4) ≥ 2) = 2 · 0.2617.
    let a = [0.0; 4];
    let b = [1.0, -1.0, 1.0, 1.0];
    let estimate = paired_bootstrap(&a, &b, 20_000, 9, 0.05).unwrap();
    assert_close(estimate.effect, 0.5, 1e-15, "effect");
    assert_close(estimate.p_value, 2.0 * 0.26171875, 0.02, "p-value");
    assert_eq!(estimate.lower, -0.5);
    assert_eq!(estimate.upper, 1.0);
}

#[test]
fn paired_bootstrap_undefined_cases() {
    assert_eq!(paired_bootstrap(&[1.0, 2.0], &[1.0], 100, 1, 0.05), None);
    assert_eq!(paired_bootstrap(&[], &[], 100, 1, 0.05), None);
    assert_eq!(paired_bootstrap(&[1.0], &[2.0], 0, 1, 0.05), None);
    assert_eq!(paired_bootstrap(&[1.0], &[2.0], 100, 1, 1.0), None);
    assert_eq!(paired_bootstrap(&[1.0], &[f64::INFINITY], 100, 1, 0.05), None);
    // One person: every replicate is their difference.
    assert_eq!(
        paired_bootstrap(&[1.0], &[3.0], 10, 1, 0.05),
        Some(Estimate { effect: 2.0, lower: 2.0, upper: 2.0, p_value: 0.0 })
    );
}
