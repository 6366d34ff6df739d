//! An experiment's report from plain rows: attribution of outcomes to exposures, per-person
//! values per variant, and the comparisons of [`super::stats`].
//!
//! **Attribution.** An outcome (click, add to cart, purchase) counts for the exposure it names
//! (`recommendation_id`) when that exposure showed its item (or it names none); otherwise for
//! the person's most recent exposure that showed the item within the window before it, on any
//! channel. Each outcome counts once, for one exposure; it is *cross-channel* when it happened
//! on another channel than that exposure (an email's item bought in the store). Outcomes may
//! precede their exposure by [`CLOCK_SKEW`] (channels' clocks differ from the server's).
//!
//! **Persons.** Rows carry the stitched person key as the live identity graph knows it when
//! the report is made, so a person's exposures and outcomes on every channel and under every
//! identifier add up to one person. A person exposed to more than one variant (two persons
//! already assigned, merged later) is counted in `mixed_persons` and left out unless the
//! analysis includes them (then under the variant of their first exposure).
//!
//! **Metrics**, per person exposed: converted (0/1: any attributed purchase), attributed
//! revenue (winsorised at a quantile of the positive revenues of all included persons:
//! capping over all persons would cap everything at 0 when fewer than 1 % buy), attributed
//! clicks per exposure (a ratio metric: delta method). CUPED adjusts conversion and revenue by
//! each person's activity in the store before the experiment started, with θ pooled over the
//! two arms compared. Every non-control variant is compared with the control on the primary
//! metric and each guardrail; Holm's correction runs over all those comparisons.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::definition::{Experiment, Metric};
use super::stats::{self, Comparison, RatioSample, Sample, Srm};

/// How far an outcome may precede the exposure it is attributed to, in seconds.
pub const CLOCK_SKEW: i64 = 300;

/// What an outcome event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// A click on an item.
    Click,
    /// An item put in the cart.
    AddToCart,
    /// A purchase; its value is revenue.
    Purchase,
    /// A return: cancels the person's latest counted purchase of the item, its revenue
    /// included.
    Return,
}

/// One exposure, with the person it belongs to now.
#[derive(Debug, Clone, PartialEq)]
pub struct ExposureRow {
    /// The recommendation id.
    pub id: String,
    /// The stitched person's key.
    pub person: String,
    /// The variant (index into the experiment's variants).
    pub variant: usize,
    /// The channel it was shown on.
    pub channel: String,
    /// The items shown.
    pub items: Vec<String>,
    /// When, seconds since the epoch.
    pub at: i64,
}

/// One outcome event, with the person it belongs to now.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    /// The stitched person's key.
    pub person: String,
    /// What happened.
    pub kind: OutcomeKind,
    /// The item.
    pub item: Option<String>,
    /// Revenue, for purchases.
    pub value: f64,
    /// The channel it happened on.
    pub channel: String,
    /// When, seconds since the epoch.
    pub at: i64,
    /// The recommendation the channel says led to it.
    pub recommendation_id: Option<String>,
}

/// The exposure an outcome counts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribution {
    /// Index into the exposures.
    pub exposure: usize,
    /// Whether it was named by the outcome (else found through the window).
    pub direct: bool,
    /// Whether the outcome happened on another channel than the exposure.
    pub cross_channel: bool,
}

/// For each outcome, the exposure it counts for (see the module docs); `window` in seconds.
pub fn attribute(
    exposures: &[ExposureRow],
    outcomes: &[OutcomeRow],
    window: i64,
) -> Vec<Option<Attribution>> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    let mut by_person: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in exposures.iter().enumerate() {
        by_id.insert(&e.id, i);
        by_person.entry(&e.person).or_default().push(i);
    }
    for list in by_person.values_mut() {
        list.sort_by_key(|&i| exposures[i].at);
    }
    let shows =
        |e: &ExposureRow, item: &Option<String>| item.as_ref().is_none_or(|item| e.items.contains(item));
    outcomes
        .iter()
        .map(|o| {
            let named = o.recommendation_id.as_deref().and_then(|id| by_id.get(id)).copied();
            let direct =
                named.filter(|&i| shows(&exposures[i], &o.item) && exposures[i].at <= o.at + CLOCK_SKEW);
            let found = direct.map(|i| (i, true)).or_else(|| {
                let item = o.item.as_ref()?;
                let list = by_person.get(o.person.as_str())?;
                list.iter()
                    .rev()
                    .copied()
                    .filter(|&i| exposures[i].at <= o.at + CLOCK_SKEW && o.at - exposures[i].at <= window)
                    .find(|&i| exposures[i].items.contains(item))
                    .map(|i| (i, false))
            });
            found.map(|(exposure, direct)| Attribution {
                exposure,
                direct,
                cross_channel: exposures[exposure].channel != o.channel,
            })
        })
        .collect()
}

/// Counts of one channel within a variant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelCounts {
    /// Persons exposed on the channel.
    pub persons: u64,
    /// Exposures on the channel.
    pub exposures: u64,
    /// Attributed purchases of exposures on the channel.
    pub purchases: u64,
    /// Their revenue.
    pub revenue: f64,
}

/// What one variant did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VariantSummary {
    /// Its name.
    pub name: String,
    /// Its configured share (normalised).
    pub share: f64,
    /// Persons exposed (analysed).
    pub persons: u64,
    /// Exposures.
    pub exposures: u64,
    /// Attributed clicks.
    pub clicks: u64,
    /// Persons with an attributed purchase.
    pub converted: u64,
    /// Attributed purchases.
    pub purchases: u64,
    /// Attributed revenue (not winsorised).
    pub revenue: f64,
    /// Clicks per exposure.
    pub click_through_rate: f64,
    /// Converted persons per exposed person.
    pub conversion_rate: f64,
    /// Attributed revenue per exposed person (not winsorised).
    pub revenue_per_person: f64,
    /// Attributed purchases on another channel than their exposure.
    pub cross_channel_purchases: u64,
    /// Their revenue.
    pub cross_channel_revenue: f64,
    /// Per channel of exposure.
    pub channels: BTreeMap<String, ChannelCounts>,
}

/// One variant against the control on one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricComparison {
    /// The variant (index).
    pub variant: usize,
    /// The metric.
    pub metric: Metric,
    /// Whether it is the primary metric (else a guardrail).
    pub primary: bool,
    /// The control's value as tested (per person, revenue winsorised; clicks per exposure for
    /// the click-through rate).
    pub control_value: f64,
    /// The variant's value.
    pub variant_value: f64,
    /// The comparison; `None` when it cannot be made (too few persons, no variance).
    pub comparison: Option<Comparison>,
    /// The relative lift's p-value after Holm's correction over every comparison.
    pub p_adjusted: Option<f64>,
    /// The smallest relative lift detectable at the current sizes (α, 80 % power).
    pub detectable_lift: Option<f64>,
}

/// Sample-ratio checks: overall and per channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SrmChecks {
    /// Persons per variant against the shares.
    pub overall: Option<Srm>,
    /// Persons exposed on each channel, per variant, against the shares.
    pub by_channel: BTreeMap<String, Option<Srm>>,
}

impl SrmChecks {
    /// Whether any check is below [`stats::SRM_ALPHA`].
    pub fn warns(&self) -> bool {
        let low = |s: &Option<Srm>| s.as_ref().is_some_and(|s| s.p_value < stats::SRM_ALPHA);
        low(&self.overall) || self.by_channel.values().any(low)
    }
}

/// The report of one experiment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Per variant, in definition order.
    pub variants: Vec<VariantSummary>,
    /// The control (index).
    pub control: usize,
    /// Sample-ratio checks.
    pub srm: SrmChecks,
    /// Every non-control variant against the control, primary metric first.
    pub comparisons: Vec<MetricComparison>,
    /// Persons exposed to more than one variant.
    pub mixed_persons: u64,
    /// Whether those were left out.
    pub mixed_excluded: bool,
    /// Outcomes attributed (a purchase taken back by its return no longer counts).
    pub attributed: u64,
    /// Of them, on another channel than their exposure.
    pub cross_channel: u64,
    /// Whether intervals are anytime-valid.
    pub sequential: bool,
    /// Per metric, the CUPED θ used against each variant (absent: not applied).
    pub cuped: Vec<(usize, Metric, f64)>,
    /// The revenue cap applied, if any.
    pub revenue_cap: Option<f64>,
    /// Sentences for the reader (underpowered comparisons, say).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct PersonTotals {
    /// Variants exposed, with the first exposure's time.
    variants: BTreeMap<usize, i64>,
    exposures: u64,
    clicks: u64,
    purchases: u64,
    revenue: f64,
    channels: BTreeSet<String>,
}

impl PersonTotals {
    fn first_variant(&self) -> Option<usize> {
        self.variants.iter().min_by_key(|(v, at)| (**at, **v)).map(|(v, _)| *v)
    }
}

/// The report of `experiment` from its exposures and the outcome events, both with their
/// persons as they are now; `pre_activity` holds each person's activity before the experiment
/// started (CUPED's covariate; absent persons had none).
pub fn report(
    experiment: &Experiment,
    exposures: &[ExposureRow],
    outcomes: &[OutcomeRow],
    pre_activity: &HashMap<String, f64>,
) -> Report {
    let analysis = &experiment.analysis;
    let n_variants = experiment.variants.len();
    let window = (analysis.window_days * 86_400.0) as i64;
    let attributions = attribute(exposures, outcomes, window);
    let mut persons: BTreeMap<&str, PersonTotals> = BTreeMap::new();
    for e in exposures.iter().filter(|e| e.variant < n_variants) {
        let p = persons.entry(&e.person).or_default();
        let first = p.variants.entry(e.variant).or_insert(e.at);
        *first = (*first).min(e.at);
        p.exposures += 1;
        p.channels.insert(e.channel.clone());
    }
    let mixed_persons = persons.values().filter(|p| p.variants.len() > 1).count() as u64;
    let mixed_excluded = !analysis.include_mixed;
    let included = |p: &PersonTotals| !(mixed_excluded && p.variants.len() > 1);
    let mut summaries: Vec<VariantSummary> = experiment
        .variants
        .iter()
        .zip(experiment.shares())
        .map(|(v, share)| VariantSummary { name: v.name.clone(), share, ..VariantSummary::default() })
        .collect();
    let (mut attributed, mut cross_channel) = (0, 0);
    // The variant a person's numbers count under: their exposure's, or for a person exposed
    // to several (analysed only with `include_mixed`) the first, as their person counts.
    let analysed = |p: &PersonTotals, e: &ExposureRow| {
        if p.variants.len() > 1 { p.first_variant().unwrap_or(e.variant) } else { e.variant }
    };
    // Per person and item, the purchases counted (exposure, variant, revenue, cross-channel),
    // so that a return takes back the latest.
    type Counted = Vec<(usize, usize, f64, bool)>;
    let mut counted: HashMap<(&str, &str), Counted> = HashMap::new();
    // In time order (then as logged): a purchase sent late (a till's nightly batch) after
    // its return is still the one the return takes back.
    let mut order: Vec<usize> = (0..outcomes.len()).collect();
    order.sort_by_key(|&i| (outcomes[i].at, i));
    for (o, a) in order.iter().map(|&i| (&outcomes[i], &attributions[i])) {
        if o.kind == OutcomeKind::Return {
            let Some(item) = o.item.as_deref() else { continue };
            let Some((exposure, variant, value, cross)) =
                counted.get_mut(&(o.person.as_str(), item)).and_then(Vec::pop)
            else {
                continue;
            };
            let e = &exposures[exposure];
            attributed -= 1;
            cross_channel -= u64::from(cross);
            if let Some(p) = persons.get_mut(e.person.as_str()) {
                p.purchases = p.purchases.saturating_sub(1);
                p.revenue -= value;
            }
            let summary = &mut summaries[variant];
            summary.purchases = summary.purchases.saturating_sub(1);
            summary.revenue -= value;
            let channel = summary.channels.entry(e.channel.clone()).or_default();
            channel.purchases = channel.purchases.saturating_sub(1);
            channel.revenue -= value;
            if cross {
                summary.cross_channel_purchases = summary.cross_channel_purchases.saturating_sub(1);
                summary.cross_channel_revenue -= value;
            }
            continue;
        }
        let Some(a) = a else { continue };
        let e = &exposures[a.exposure];
        let Some(p) = persons.get_mut(e.person.as_str()) else { continue };
        if !included(p) {
            continue;
        }
        attributed += 1;
        cross_channel += u64::from(a.cross_channel);
        let variant = analysed(p, e);
        let summary = &mut summaries[variant];
        match o.kind {
            OutcomeKind::Click => {
                p.clicks += 1;
                summary.clicks += 1;
            }
            OutcomeKind::AddToCart | OutcomeKind::Return => {}
            OutcomeKind::Purchase => {
                if let Some(item) = o.item.as_deref() {
                    counted.entry((o.person.as_str(), item)).or_default().push((
                        a.exposure,
                        variant,
                        o.value,
                        a.cross_channel,
                    ));
                }
                p.purchases += 1;
                p.revenue += o.value;
                summary.purchases += 1;
                summary.revenue += o.value;
                let channel = summary.channels.entry(e.channel.clone()).or_default();
                channel.purchases += 1;
                channel.revenue += o.value;
                if a.cross_channel {
                    summary.cross_channel_purchases += 1;
                    summary.cross_channel_revenue += o.value;
                }
            }
        }
    }
    for e in exposures.iter().filter(|e| e.variant < n_variants) {
        if let Some(p) = persons.get(e.person.as_str()).filter(|p| included(p)) {
            let variant = analysed(p, e);
            summaries[variant].exposures += 1;
            summaries[variant].channels.entry(e.channel.clone()).or_default().exposures += 1;
        }
    }
    // Per variant, its persons' values: (converted, revenue, clicks, exposures, covariate).
    let mut values: Vec<Vec<[f64; 5]>> = vec![Vec::new(); n_variants];
    let mut channel_persons: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (key, p) in &persons {
        let Some(variant) = p.first_variant().filter(|_| included(p)) else { continue };
        let summary = &mut summaries[variant];
        summary.persons += 1;
        summary.converted += u64::from(p.purchases > 0);
        for channel in &p.channels {
            summary.channels.entry(channel.clone()).or_default().persons += 1;
            channel_persons.entry(channel.clone()).or_insert_with(|| vec![0; n_variants])[variant] += 1;
        }
        let pre = pre_activity.get(*key).copied().unwrap_or(0.0);
        values[variant].push([
            f64::from(u8::from(p.purchases > 0)),
            p.revenue,
            p.clicks as f64,
            p.exposures as f64,
            pre,
        ]);
    }
    for s in &mut summaries {
        let per = |x: f64, n: u64| if n > 0 { x / n as f64 } else { 0.0 };
        s.click_through_rate = per(s.clicks as f64, s.exposures);
        s.conversion_rate = per(s.converted as f64, s.persons);
        s.revenue_per_person = per(s.revenue, s.persons);
    }
    let shares = experiment.shares();
    let srm = SrmChecks {
        overall: stats::srm(&summaries.iter().map(|s| s.persons).collect::<Vec<_>>(), &shares),
        by_channel: channel_persons
            .into_iter()
            .map(|(c, counts)| (c, stats::srm(&counts, &shares)))
            .collect(),
    };
    // Revenue capped at a quantile of the positive revenues of every included person.
    let mut revenue_cap = None;
    if let Some(q) = analysis.winsorize {
        let mut positive: Vec<f64> = values.iter().flatten().map(|v| v[1]).filter(|r| *r > 0.0).collect();
        if !positive.is_empty()
            && let Some(cap) = stats::winsorize(&mut positive, q)
        {
            revenue_cap = Some(cap);
            for v in values.iter_mut().flatten() {
                v[1] = v[1].min(cap);
            }
        }
    }
    let control = experiment.control();
    let mut metrics = vec![(experiment.primary_metric, true)];
    for &g in &experiment.guardrails {
        if !metrics.iter().any(|(m, _)| *m == g) {
            metrics.push((g, false));
        }
    }
    let mut comparisons = Vec::new();
    let mut cuped = Vec::new();
    let mut notes = Vec::new();
    for variant in (0..n_variants).filter(|&v| v != control && shares[v] > 0.0) {
        for &(metric, primary) in &metrics {
            let (c, t) = (&values[control], &values[variant]);
            let (control_value, variant_value, comparison, detectable) = match metric {
                Metric::ClickThroughRate => {
                    let pairs = |rows: &[[f64; 5]]| rows.iter().map(|r| (r[2], r[3])).collect::<Vec<_>>();
                    let (rc, rt) = (RatioSample::from_pairs(&pairs(c)), RatioSample::from_pairs(&pairs(t)));
                    let ratio = |r: &RatioSample| if r.sum_den > 0.0 { r.sum_num / r.sum_den } else { 0.0 };
                    (ratio(&rc), ratio(&rt), stats::ratio_delta(&rc, &rt, analysis.alpha), None)
                }
                Metric::ConversionRate | Metric::RevenuePerPerson => {
                    let column = if metric == Metric::ConversionRate { 0 } else { 1 };
                    let mut yc: Vec<f64> = c.iter().map(|r| r[column]).collect();
                    let mut yt: Vec<f64> = t.iter().map(|r| r[column]).collect();
                    let (raw_c, raw_t) = (Sample::from_values(&yc).mean(), Sample::from_values(&yt).mean());
                    if analysis.cuped {
                        let xc: Vec<f64> = c.iter().map(|r| r[4]).collect();
                        let xt: Vec<f64> = t.iter().map(|r| r[4]).collect();
                        let (y, x): (Vec<f64>, Vec<f64>) = (
                            yc.iter().chain(&yt).copied().collect(),
                            xc.iter().chain(&xt).copied().collect(),
                        );
                        let x_mean = Sample::from_values(&x).mean();
                        let adjusted = stats::cuped_theta(&y, &x).filter(|t| *t != 0.0).and_then(|theta| {
                            let c = stats::cuped_adjust(&yc, &xc, theta, x_mean)?;
                            let t = stats::cuped_adjust(&yt, &xt, theta, x_mean)?;
                            Some((theta, c, t))
                        });
                        if let Some((theta, c, t)) = adjusted {
                            (yc, yt) = (c, t);
                            cuped.push((variant, metric, theta));
                        }
                    }
                    let (sc, st) = (Sample::from_values(&yc), Sample::from_values(&yt));
                    let comparison = if analysis.sequential {
                        stats::welch_sequential(&sc, &st, analysis.alpha, analysis.sequential_tuning)
                    } else {
                        stats::welch(&sc, &st, analysis.alpha)
                    };
                    let detectable = stats::relative_mde(&sc, &st, analysis.alpha, 0.8);
                    (raw_c, raw_t, comparison, detectable)
                }
            };
            let significant = comparison.as_ref().is_some_and(|c| c.relative.p_value < analysis.alpha);
            if primary
                && !significant
                && let Some(d) = detectable
                && d > analysis.minimum_detectable_effect
            {
                notes.push(format!(
                    "underpowered: `{}` against `{}` on {} detects a relative lift of {:.1} % at the \
                     current sizes (80 % power), above the {:.1} % minimum detectable effect; keep it running",
                    experiment.variants[variant].name,
                    experiment.variants[control].name,
                    metric.as_str(),
                    d * 100.0,
                    analysis.minimum_detectable_effect * 100.0,
                ));
            }
            comparisons.push(MetricComparison {
                variant,
                metric,
                primary,
                control_value,
                variant_value,
                comparison,
                p_adjusted: None,
                detectable_lift: detectable,
            });
        }
    }
    let tested: Vec<usize> =
        (0..comparisons.len()).filter(|&i| comparisons[i].comparison.is_some()).collect();
    let p: Vec<f64> = tested
        .iter()
        .filter_map(|&i| comparisons[i].comparison.as_ref().map(|c| c.relative.p_value))
        .collect();
    for (&i, adjusted) in tested.iter().zip(stats::holm(&p)) {
        comparisons[i].p_adjusted = Some(adjusted);
    }
    if mixed_persons > 0 {
        notes.push(format!(
            "{mixed_persons} person(s) were exposed to more than one variant (identities merged after \
             both were assigned); {}",
            if mixed_excluded { "left out of the analysis" } else { "analysed under their first variant" }
        ));
    }
    if srm.warns() {
        notes.insert(
            0,
            "sample-ratio mismatch: the persons per variant do not match the configured shares (p < 0.001); \
             the assignment or the exposure logging is broken, do not trust the comparisons"
                .into(),
        );
    }
    Report {
        variants: summaries,
        control,
        srm,
        comparisons,
        mixed_persons,
        mixed_excluded,
        attributed,
        cross_channel,
        sequential: analysis.sequential,
        cuped,
        revenue_cap,
        notes,
    }
}

/// One point of a variant's conversion rate over time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePoint {
    /// The cut-off time.
    pub at: i64,
    /// Conversion rate of the persons exposed by then.
    pub rate: f64,
    /// Its (1 − α) interval (normal approximation, clamped to [0, 1]).
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
    /// Persons exposed by then.
    pub persons: u64,
}

/// Per variant, the conversion rate and its interval using only what happened up to each of
/// `cutoffs` (cumulative; for the dashboard's chart).
pub fn timeline(
    experiment: &Experiment,
    exposures: &[ExposureRow],
    outcomes: &[OutcomeRow],
    cutoffs: &[i64],
) -> Vec<Vec<RatePoint>> {
    let z = stats::normal_quantile(1.0 - experiment.analysis.alpha / 2.0);
    let mut series = vec![Vec::with_capacity(cutoffs.len()); experiment.variants.len()];
    let no_activity = HashMap::new();
    let mut quick = experiment.clone();
    quick.analysis.cuped = false;
    quick.analysis.winsorize = None;
    quick.guardrails.clear();
    for &cutoff in cutoffs {
        let e: Vec<ExposureRow> = exposures.iter().filter(|e| e.at <= cutoff).cloned().collect();
        let o: Vec<OutcomeRow> = outcomes.iter().filter(|o| o.at <= cutoff).cloned().collect();
        let r = report(&quick, &e, &o, &no_activity);
        for (v, s) in r.variants.iter().enumerate() {
            let n = s.persons as f64;
            let half =
                if n > 0.0 { z * (s.conversion_rate * (1.0 - s.conversion_rate) / n).sqrt() } else { 0.0 };
            series[v].push(RatePoint {
                at: cutoff,
                rate: s.conversion_rate,
                lower: (s.conversion_rate - half).max(0.0),
                upper: (s.conversion_rate + half).min(1.0),
                persons: s.persons,
            });
        }
    }
    series
}

#[cfg(test)]
mod tests;
