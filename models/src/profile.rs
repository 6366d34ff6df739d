//! Derived profile attributes per person, the seeds of a customer data platform: category
//! affinity, behavioural features, purchase propensity, churn risk and segments.
//!
//! Behavioural features come from [`Dataset::activity`] up to a window end, in the order of
//! [`FEATURE_NAMES`]; models see `ln(1 + x)` of each (all are non-negative counts, amounts or
//! day spans), z-scored. Propensity and churn are logistic regressions trained on the past:
//! features up to `cutoff = newest − horizon`, labels from `(cutoff, newest]`; persons are then
//! scored on features up to `newest`, i.e. for the next horizon. Segments are k-means clusters
//! of the z-scored features over the full window.

use std::collections::HashMap;

use linfa::traits::{Fit as _, Predict as _};
use linfa_clustering::KMeans;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use datasets::UserIdx;
use datasets::dataset::{Activity, ActivityKind, Dataset, Matrix};
use datasets::schema::Item;

use crate::error::{Error, Result};

/// Number of behavioural features.
pub const N_FEATURES: usize = 9;
/// The behavioural features, in column order. Recency is days from the last event to the
/// window end; tenure is days from the first event to the last.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "recency_days",
    "events",
    "purchases",
    "revenue",
    "carts",
    "browses",
    "engagements",
    "channels",
    "tenure_days",
];
const DAY: f64 = 86_400.0;
const TOP_CATEGORIES: usize = 3;
const HOLDOUT_SHARE: f64 = 0.2;

/// Hyperparameters of the profile attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileParams {
    /// Days ahead that propensity and churn predict (default 30).
    pub horizon_days: u32,
    /// Number of k-means segments (default 5); fewer when there are fewer persons.
    pub n_segments: usize,
    /// Seed of the holdout split and of k-means (default 42).
    pub seed: u64,
    /// Iteration cap of the logistic solver and of each k-means run (default 100).
    pub max_iterations: u64,
    /// L2 penalty on the logistic weights (linfa's `alpha`; the loss is summed over persons, so the
    /// default 1.0 is mild).
    #[serde(alias = "regularisation")]
    pub regularization: f64,
}

impl Default for ProfileParams {
    fn default() -> Self {
        ProfileParams { horizon_days: 30, n_segments: 5, seed: 42, max_iterations: 100, regularization: 1.0 }
    }
}

impl ProfileParams {
    /// Checks that counts are at least 1 and the penalty finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| Err(Error::InvalidParam { name, reason: reason.into() });
        if self.horizon_days == 0 {
            return bad("profiles.horizon_days", "must be at least 1");
        }
        if self.n_segments == 0 || self.n_segments > 100 {
            return bad("profiles.n_segments", "must be between 1 and 100");
        }
        if self.max_iterations == 0 {
            return bad("profiles.max_iterations", "must be at least 1");
        }
        if !(self.regularization.is_finite() && self.regularization >= 0.0) {
            return bad("profiles.regularization", "must be a finite number >= 0");
        }
        Ok(())
    }
}

/// Per-feature mean and (population) standard deviation for z-scoring; a constant feature
/// gets a deviation of 1, so it scores 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Means, in [`FEATURE_NAMES`] order, of the `ln(1 + x)` features.
    pub mean: Vec<f64>,
    /// Standard deviations, same order.
    pub std: Vec<f64>,
}

impl Scaler {
    fn fit(rows: ArrayView2<'_, f64>) -> Self {
        let Some(mean) = rows.mean_axis(Axis(0)) else {
            return Scaler { mean: vec![0.0; rows.ncols()], std: vec![1.0; rows.ncols()] };
        };
        let std = rows.std_axis(Axis(0), 0.0).mapv(|s| if s > 1e-9 { s } else { 1.0 });
        Scaler { mean: mean.to_vec(), std: std.to_vec() }
    }

    /// Z-scores one row of `ln(1 + x)` features.
    pub fn apply(&self, features: &[f64]) -> Vec<f64> {
        features.iter().zip(self.mean.iter().zip(&self.std)).map(|(x, (m, s))| (x - m) / s).collect()
    }

    fn apply_all(&self, rows: ArrayView2<'_, f64>) -> Array2<f64> {
        (&rows - &Array1::from(self.mean.clone())) / &Array1::from(self.std.clone())
    }
}

/// A fitted binary outcome: `p = σ(w · z + b)`, with `z` the scaled `ln(1 + x)` features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeModel {
    /// Standardisation learnt on the training rows, for scoring persons later.
    pub scaler: Scaler,
    /// Weights `w`, in [`FEATURE_NAMES`] order.
    pub weights: Vec<f64>,
    /// Intercept `b`.
    pub intercept: f64,
}

impl OutcomeModel {
    /// The probability of the outcome for one row of `ln(1 + x)` features.
    pub fn probability(&self, features: &[f64]) -> f64 {
        let z = self.scaler.apply(features);
        let logit = self.intercept + z.iter().zip(&self.weights).map(|(z, w)| z * w).sum::<f64>();
        1.0 / (1.0 + (-logit).exp())
    }
}

/// How one outcome model was trained and how well it ranks unseen persons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutcomeReport {
    /// Persons active before the cutoff (the training rows).
    pub n_rows: usize,
    /// Of which held out to measure AUC (a seeded 20%).
    pub n_holdout: usize,
    /// Share of training rows with the outcome.
    pub base_rate: Option<f32>,
    /// Area under the ROC curve on the holdout, of a model fitted on the other rows; `None` when
    /// the holdout or the rest lacks one of the classes.
    pub holdout_auc: Option<f32>,
    /// Why the model was not trained, if it was not.
    pub skipped: Option<String>,
    /// The model used for the scores, fitted on all training rows.
    pub model: Option<OutcomeModel>,
}

/// Training windows and the quality of the outcome models.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileReport {
    /// The newest activity time; the end of the scoring window.
    pub newest: i64,
    /// `newest − horizon`: the end of the training window and the start of the label window.
    pub cutoff: i64,
    /// Purchase propensity: a purchase in `(cutoff, newest]`.
    pub propensity: OutcomeReport,
    /// Churn: active before the cutoff, no activity in `(cutoff, newest]`.
    pub churn: OutcomeReport,
}

/// One segment of persons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentSummary {
    /// The segment's number; segments are numbered by size, largest first.
    pub id: u32,
    /// A short description from its features relative to everyone's (`frequent buyers`, `lapsed`).
    pub label: String,
    /// Number of persons.
    pub size: usize,
    /// Mean of the raw features (days, counts, revenue), in [`FEATURE_NAMES`] order.
    pub mean_features: Vec<f32>,
    /// Mean of the z-scored `ln(1 + x)` features: the centroid, for assigning new persons.
    pub centroid: Vec<f32>,
}

/// Profile attributes of every person, indexed by [`UserIdx`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profiles {
    /// Up to three (top category, share of confidence weight) pairs, largest first; shares sum
    /// to at most 1 (items without a category count in the total only).
    pub category_affinity: Vec<Vec<(String, f32)>>,
    /// Probability of a purchase within the horizon; `None` when the model was skipped.
    pub purchase_propensity: Option<Vec<f32>>,
    /// Probability of no activity within the horizon; `None` when the model was skipped.
    pub churn_risk: Option<Vec<f32>>,
    /// Segment number per person (an index into `segments`).
    pub segment: Vec<u32>,
    /// The segments, largest first.
    pub segments: Vec<SegmentSummary>,
    /// Standardisation of the full-window features used for segments.
    pub segment_scaler: Scaler,
    /// Training windows, holdout AUCs, base rates, reasons for skips.
    pub report: ProfileReport,
}

/// One person's attributes, borrowed from [`Profiles`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonProfile<'a> {
    /// Top categories with their shares.
    pub category_affinity: &'a [(String, f32)],
    /// Purchase propensity, if modelled.
    pub purchase_propensity: Option<f32>,
    /// Churn risk, if modelled.
    pub churn_risk: Option<f32>,
    /// The person's segment.
    pub segment: Option<&'a SegmentSummary>,
}

impl Profiles {
    /// Number of persons.
    pub fn n_users(&self) -> usize {
        self.category_affinity.len()
    }

    /// The attributes of `user`, or `None` when out of range.
    pub fn person(&self, user: UserIdx) -> Option<PersonProfile<'_>> {
        let u = user.get();
        Some(PersonProfile {
            category_affinity: self.category_affinity.get(u)?,
            purchase_propensity: self.purchase_propensity.as_ref().and_then(|p| p.get(u).copied()),
            churn_risk: self.churn_risk.as_ref().and_then(|c| c.get(u).copied()),
            segment: self.segment.get(u).and_then(|&s| self.segments.get(s as usize)),
        })
    }
}

/// Computes every person's profile attributes. `user_items` (person × item confidence) must
/// come from `dataset` (same persons and items). Fails on invalid parameters, on a mismatch
/// between the two, or when k-means fails.
pub fn fit_profiles(dataset: &Dataset, user_items: &Matrix, params: &ProfileParams) -> Result<Profiles> {
    params.validate()?;
    let n_users = dataset.n_users();
    if user_items.rows() != n_users || user_items.cols() != dataset.n_items() {
        let reason = format!(
            "training matrix is {} persons × {} items, data set {n_users} × {}",
            user_items.rows(),
            user_items.cols(),
            dataset.n_items()
        );
        return Err(Error::Untrainable { model: "profile", reason });
    }
    if let Some(a) = dataset.activities().find(|a| a.user.get() >= n_users) {
        return Err(Error::OutOfRange { what: "user", index: a.user.get(), len: n_users });
    }
    let activity = dataset.activities();
    let newest = activity.clone().map(|a| a.timestamp).max().unwrap_or(0);
    let oldest = activity.clone().map(|a| a.timestamp).min().unwrap_or(0);
    let cutoff = newest.saturating_sub(i64::from(params.horizon_days) * DAY as i64);
    let (raw_all, x_all) = features(&tally(activity.clone(), n_users, |t| t <= newest), newest, oldest);

    let before = tally(activity.clone(), n_users, |t| t <= cutoff);
    let after = tally(activity, n_users, |t| t > cutoff && t <= newest);
    let rows: Vec<usize> = (0..n_users).filter(|&u| before[u].events > 0).collect();
    let x_train = features(&before, cutoff, oldest).1.select(Axis(0), &rows);
    let skip =
        (newest == oldest).then(|| "activity timestamps are all equal (no time information)".to_owned());
    let outcome = |label: &dyn Fn(usize) -> bool| {
        let labels: Vec<bool> = rows.iter().map(|&u| label(u)).collect();
        fit_outcome(x_train.view(), &labels, x_all.view(), params, skip.clone())
    };
    let (propensity, purchase_propensity) = outcome(&|u| after[u].purchases > 0);
    let (churn, churn_risk) = outcome(&|u| after[u].events == 0);
    let (segment, segments, segment_scaler) = segment(raw_all.view(), x_all.view(), params)?;
    Ok(Profiles {
        category_affinity: category_affinity(user_items, &dataset.catalog),
        purchase_propensity,
        churn_risk,
        segment,
        segments,
        segment_scaler,
        report: ProfileReport { newest, cutoff, propensity, churn },
    })
}

/// Per person, top categories by share of confidence weight.
fn category_affinity(user_items: &Matrix, catalog: &[Item]) -> Vec<Vec<(String, f32)>> {
    let mut names: Vec<String> = Vec::new();
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let item_category: Vec<Option<u32>> = (catalog.iter())
        .map(|item| {
            let top = item.top_category().filter(|c| !c.is_empty())?;
            Some(*ids.entry(top).or_insert_with(|| {
                names.push(top.to_owned());
                names.len() as u32 - 1
            }))
        })
        .collect();
    (0..user_items.rows())
        .into_par_iter()
        .map(|user| {
            let (mut total, mut weights) = (0.0f64, Vec::<(u32, f64)>::new());
            for (item, &w) in user_items.outer_view(user).iter().flat_map(|row| row.iter()) {
                if !(w.is_finite() && w > 0.0) {
                    continue;
                }
                total += f64::from(w);
                if let Some(&Some(c)) = item_category.get(item) {
                    match weights.iter_mut().find(|(id, _)| *id == c) {
                        Some(entry) => entry.1 += f64::from(w),
                        None => weights.push((c, f64::from(w))),
                    }
                }
            }
            weights.sort_by(|a, b| {
                b.1.total_cmp(&a.1).then_with(|| names[a.0 as usize].cmp(&names[b.0 as usize]))
            });
            weights.truncate(TOP_CATEGORIES);
            weights.into_iter().map(|(c, w)| (names[c as usize].clone(), (w / total) as f32)).collect()
        })
        .collect()
}

/// Event counts of one person within a window.
#[derive(Debug, Clone, Default)]
struct Tally {
    first: i64,
    last: i64,
    events: u32,
    purchases: u32,
    revenue: f64,
    carts: u32,
    browses: u32,
    engagements: u32,
    channels: Vec<u16>,
}

fn tally(
    activity: impl Iterator<Item = Activity>,
    n_users: usize,
    in_window: impl Fn(i64) -> bool,
) -> Vec<Tally> {
    let mut tallies = vec![Tally::default(); n_users];
    for a in activity.filter(|a| in_window(a.timestamp)) {
        let t = &mut tallies[a.user.get()];
        (t.first, t.last) = if t.events == 0 {
            (a.timestamp, a.timestamp)
        } else {
            (t.first.min(a.timestamp), t.last.max(a.timestamp))
        };
        t.events += 1;
        match a.kind {
            ActivityKind::Purchase => {
                (t.purchases, t.revenue) = (t.purchases + 1, t.revenue + f64::from(a.revenue))
            }
            ActivityKind::Cart => t.carts += 1,
            ActivityKind::Browse => t.browses += 1,
            ActivityKind::Engage => t.engagements += 1,
            ActivityKind::Return | ActivityKind::Other => {}
        }
        if !t.channels.contains(&a.channel) {
            t.channels.push(a.channel);
        }
    }
    tallies
}

/// Raw features and their `ln(1 + x)` transform for a window ending at `end`; persons without
/// events count as last seen at `origin`.
fn features(tallies: &[Tally], end: i64, origin: i64) -> (Array2<f64>, Array2<f64>) {
    let mut raw = Array2::zeros((tallies.len(), N_FEATURES));
    for (mut row, t) in raw.rows_mut().into_iter().zip(tallies) {
        let last = if t.events > 0 { t.last } else { origin };
        let days = |from: i64, to: i64| (to.saturating_sub(from) as f64 / DAY).max(0.0);
        let counts = [t.events, t.purchases].map(f64::from);
        let more = [t.carts, t.browses, t.engagements].map(f64::from);
        let values = [days(last, end), counts[0], counts[1], t.revenue.max(0.0), more[0], more[1], more[2]];
        row.iter_mut().zip(values).for_each(|(cell, v)| *cell = v);
        row[7] = t.channels.len() as f64;
        row[8] = if t.events > 0 { days(t.first, t.last) } else { 0.0 };
    }
    let transformed = raw.mapv(f64::ln_1p);
    (raw, transformed)
}

/// Trains one outcome model, measures it on a holdout and scores every person.
fn fit_outcome(
    x: ArrayView2<'_, f64>,
    labels: &[bool],
    x_all: ArrayView2<'_, f64>,
    params: &ProfileParams,
    skip: Option<String>,
) -> (OutcomeReport, Option<Vec<f32>>) {
    let n_rows = labels.len();
    let positives = labels.iter().filter(|&&l| l).count();
    let mut report = OutcomeReport {
        n_rows,
        base_rate: (n_rows > 0).then(|| positives as f32 / n_rows as f32),
        ..Default::default()
    };
    report.skipped = skip.or_else(|| match positives {
        _ if n_rows == 0 => Some("no person was active before the cutoff".into()),
        0 => Some("no training person has the outcome".into()),
        p if p == n_rows => Some("every training person has the outcome".into()),
        _ => None,
    });
    if report.skipped.is_some() {
        return (report, None);
    }
    let mut order: Vec<usize> = (0..n_rows).collect();
    order.shuffle(&mut StdRng::seed_from_u64(params.seed));
    let (holdout, rest) = order.split_at((n_rows as f64 * HOLDOUT_SHARE).round() as usize);
    report.n_holdout = holdout.len();
    let has_both = |rows: &[usize]| rows.iter().any(|&r| labels[r]) && rows.iter().any(|&r| !labels[r]);
    if has_both(holdout) && has_both(rest) {
        let rest_labels: Vec<bool> = rest.iter().map(|&r| labels[r]).collect();
        if let Ok(model) = fit_logistic(x.select(Axis(0), rest).view(), &rest_labels, params) {
            let scores: Vec<f64> = holdout.iter().map(|&r| model.probability(&x.row(r).to_vec())).collect();
            let holdout_labels: Vec<bool> = holdout.iter().map(|&r| labels[r]).collect();
            report.holdout_auc = auc(&scores, &holdout_labels).map(|a| a as f32);
        }
    }
    match fit_logistic(x, labels, params) {
        Ok(model) => {
            let scores =
                x_all.rows().into_iter().map(|row| model.probability(&row.to_vec()) as f32).collect();
            report.model = Some(model);
            (report, Some(scores))
        }
        Err(reason) => {
            report.skipped = Some(reason);
            (report, None)
        }
    }
}

/// Logistic regression of `labels` on z-scored `x`, as the probability of `true`.
fn fit_logistic(
    x: ArrayView2<'_, f64>,
    labels: &[bool],
    params: &ProfileParams,
) -> Result<OutcomeModel, String> {
    let scaler = Scaler::fit(x);
    let records = linfa::Dataset::new(scaler.apply_all(x), Array1::from(labels.to_vec()));
    let fitted = LogisticRegression::default()
        .alpha(params.regularization)
        .max_iterations(params.max_iterations)
        .fit(&records)
        .map_err(|e| format!("logistic regression failed: {e}"))?;
    // linfa models the probability of its "positive" class, the more frequent one; flip the
    // signs when that is `false`.
    let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
    let weights = fitted.params().iter().map(|w| sign * w).collect();
    Ok(OutcomeModel { scaler, weights, intercept: sign * fitted.intercept() })
}

/// Area under the ROC curve by the rank statistic (Mann–Whitney U, ties at mid-rank): the chance
/// that a random positive scores above a random negative. `None` without both classes.
fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (mut rank_sum, mut start) = (0.0, 0);
    while start < order.len() {
        let end = start + order[start..].iter().take_while(|&&i| scores[i] == scores[order[start]]).count();
        let mid_rank = (start + end + 1) as f64 / 2.0;
        rank_sum += mid_rank * order[start..end].iter().filter(|&&i| labels[i]).count() as f64;
        start = end;
    }
    Some((rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0) / (n_pos * n_neg) as f64)
}

/// K-means segments of the z-scored full-window features, renumbered by size.
fn segment(
    raw: ArrayView2<'_, f64>,
    x: ArrayView2<'_, f64>,
    params: &ProfileParams,
) -> Result<(Vec<u32>, Vec<SegmentSummary>, Scaler)> {
    let scaler = Scaler::fit(x);
    if x.nrows() == 0 {
        return Ok((Vec::new(), Vec::new(), scaler));
    }
    let z = scaler.apply_all(x);
    let rng = StdRng::seed_from_u64(params.seed);
    // Three restarts instead of linfa's ten: on z-scored RFM-style features they agree closely,
    // and this step runs over every person.
    let model = KMeans::params_with_rng(params.n_segments.min(x.nrows()), rng)
        .n_runs(3)
        .max_n_iterations(params.max_iterations)
        .fit(&linfa::DatasetBase::from(z.clone()))
        .map_err(|e| Error::Numerical { model: "profile", reason: format!("k-means: {e}") })?;
    let membership: Array1<usize> = model.predict(&z);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); model.centroids().nrows()];
    membership.iter().enumerate().for_each(|(person, &c)| members[c].push(person));
    // Empty clusters (from duplicate points) are dropped; the rest are numbered largest first.
    members.retain(|m| !m.is_empty());
    members.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let mut segment = vec![0u32; x.nrows()];
    let mut label_counts: HashMap<&str, usize> = HashMap::new();
    let segments = (members.iter().enumerate())
        .map(|(id, persons)| {
            persons.iter().for_each(|&p| segment[p] = id as u32);
            let mean =
                |m: ArrayView2<'_, f64>| m.select(Axis(0), persons).mean_axis(Axis(0)).map(|v| v.to_vec());
            let (mean_raw, centroid) = (mean(raw).unwrap_or_default(), mean(z.view()).unwrap_or_default());
            let label = segment_label(&centroid);
            // A repeated label gets a number: `lapsed`, `lapsed 2`.
            let seen = *label_counts.entry(label).and_modify(|n| *n += 1).or_insert(1);
            let label = if seen > 1 { format!("{label} {seen}") } else { label.to_owned() };
            let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
            SegmentSummary {
                id: id as u32,
                label,
                size: persons.len(),
                mean_features: to_f32(mean_raw),
                centroid: to_f32(centroid),
            }
        })
        .collect();
    Ok((segment, segments, scaler))
}

/// A short label from a segment's mean z-scores (0 is everyone's mean, 1 one deviation above).
fn segment_label(z: &[f64]) -> &'static str {
    let [recency, events, purchases, _, _, browses, engagements, _, tenure] = z else {
        return "unknown";
    };
    match () {
        _ if *purchases > 0.5 && *recency < 0.0 => "frequent buyers",
        _ if *tenure < -1.5 && *events < -1.5 => "one-time visitors",
        _ if *recency > 0.5 => "lapsed",
        _ if *engagements > 0.5 => "email engaged",
        _ if *purchases < -0.5 && *browses > -0.25 => "browsers",
        _ if *tenure < -0.5 => "newcomers",
        _ if *events < -0.5 => "occasional",
        _ => "regulars",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::dataset::WeightConfig;
    use datasets::identity::IdentityRules;
    use datasets::load::Catalog;
    use datasets::schema::{Channel, Event, EventType, Identifier, IdentifierKind, Item};
    use datasets::synthetic::{SyntheticConfig, SyntheticData};

    const T0: i64 = 1_700_000_000;

    fn ev(user: &str, event_type: EventType, item: &str, day: i64) -> Event {
        Event {
            identifiers: vec![Identifier::new(IdentifierKind::UserId, user).expect("non-empty id")],
            channel: Channel::Web,
            value: (event_type == EventType::Purchase).then_some(20.0),
            event_type,
            item_id: Some(item.into()),
            timestamp: T0 + day * 86_400,
            event_id: None,
        }
    }

    fn build(events: &[Event], params: &ProfileParams) -> (Dataset, Profiles) {
        let category =
            |id: &str, c: &str| Item { item_id: id.into(), categories: vec![c.into()], ..Item::default() };
        let items = vec![
            category("shoe", "shoes>running"),
            category("pan", "home>kitchen"),
            category("jacket", "apparel>jackets"),
            category("serum", "beauty>skincare"),
            Item { item_id: "mug".into(), ..Item::default() },
        ];
        let dataset = Dataset::from_events(
            events,
            Some(Catalog { items }),
            &WeightConfig::default(),
            &IdentityRules::default(),
        )
        .expect("valid events");
        let profiles = fit_profiles(&dataset, &dataset.matrix(), params).expect("profiles");
        (dataset, profiles)
    }

    #[test]
    fn category_affinity_is_the_share_of_weight() {
        use EventType::{AddToCart, Purchase, View};
        let events = [
            ev("ann", Purchase, "shoe", 0),
            ev("ann", View, "pan", 1),
            ev("ann", View, "mug", 2),
            ev("cat", Purchase, "jacket", 0),
            ev("cat", AddToCart, "serum", 1),
            ev("cat", View, "pan", 2),
            ev("cat", View, "shoe", 3),
        ];
        let (dataset, profiles) = build(&events, &ProfileParams::default());
        let ann = profiles.person(dataset.lookup_user("ann").unwrap()).unwrap();
        // Weights: purchase 5, view 1; the mug has no category but counts in the total of 7.
        assert_eq!(ann.category_affinity, [("shoes".to_owned(), 5.0 / 7.0), ("home".to_owned(), 1.0 / 7.0)]);
        let cat = profiles.person(dataset.lookup_user("cat").unwrap()).unwrap();
        // 5 + 3 + 1 + 1 = 10; home and shoes tie at 0.1 and the name decides.
        let expected = [("apparel", 0.5), ("beauty", 0.3), ("home", 0.1)].map(|(c, s)| (c.to_owned(), s));
        assert_eq!(cat.category_affinity, expected);
        // All events fall within 3 days of each other, so there is nothing before the cutoff.
        assert_eq!(profiles.purchase_propensity, None);
        assert_eq!(profiles.report.churn.skipped.as_deref(), Some("no person was active before the cutoff"));
        assert!(profiles.person(UserIdx(2)).is_none());
    }

    #[test]
    fn auc_is_the_rank_statistic() {
        // Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of 4 pairs ordered right.
        assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Some(0.75));
        // A tie counts half: (1 + 0.5 + 2) / 4.
        assert_eq!(auc(&[0.2, 0.5, 0.5, 0.9], &[false, true, false, true]), Some(0.875));
        assert_eq!(auc(&[0.2, 0.5], &[true, true]), None);
    }

    #[test]
    fn regular_buyers_outrank_those_who_stopped() {
        // Five persons buy every 10 days until day 100, five stopped after day 40; the cutoff is
        // day 70.
        let mut events = Vec::new();
        for person in 0..5 {
            events.extend((0..=10).map(|i| ev(&format!("r{person}"), EventType::Purchase, "shoe", i * 10)));
            events.extend((0..=4).map(|i| ev(&format!("s{person}"), EventType::Purchase, "pan", i * 10)));
        }
        let (dataset, profiles) = build(&events, &ProfileParams::default());
        let (regular, stopped) = (dataset.lookup_user("r0").unwrap(), dataset.lookup_user("s0").unwrap());
        let (regular, stopped) = (profiles.person(regular).unwrap(), profiles.person(stopped).unwrap());
        assert!(regular.purchase_propensity.unwrap() > stopped.purchase_propensity.unwrap() + 0.2);
        assert!(stopped.churn_risk.unwrap() > regular.churn_risk.unwrap() + 0.2);
        assert_eq!(profiles.report.propensity.base_rate, Some(0.5));
        assert_eq!(profiles.report.propensity.n_holdout, 2);
        // Two distinct behaviours give two segments, not five.
        assert_eq!(profiles.segments.iter().map(|s| s.size).collect::<Vec<_>>(), [5, 5]);
        assert_eq!(regular.segment.unwrap().label, "frequent buyers");
        assert_eq!(stopped.segment.unwrap().label, "lapsed");
        // 11 purchases of 20 each for the regulars.
        assert_eq!(regular.segment.unwrap().mean_features[3], 220.0);
    }

    #[test]
    fn equal_timestamps_skip_the_outcome_models() {
        let events = [ev("ann", EventType::Purchase, "shoe", 0), ev("bob", EventType::View, "pan", 0)];
        let (_, profiles) = build(&events, &ProfileParams::default());
        let reason = profiles.report.propensity.skipped.as_deref().unwrap_or_default();
        assert!(reason.contains("timestamps"), "{reason}");
        assert!(profiles.purchase_propensity.is_none() && profiles.churn_risk.is_none());
        // Two persons, so at most two segments.
        assert!(profiles.segments.len() <= 2 && profiles.segment.len() == 2);
    }

    #[test]
    fn invalid_params_are_refused() {
        let params = ProfileParams { n_segments: 0, ..ProfileParams::default() };
        assert!(matches!(params.validate(), Err(Error::InvalidParam { name: "profiles.n_segments", .. })));
        let params = ProfileParams { regularization: f64::NAN, ..ProfileParams::default() };
        assert!(matches!(
            params.validate(),
            Err(Error::InvalidParam { name: "profiles.regularization", .. })
        ));
    }

    #[test]
    fn synthetic_propensity_beats_chance() {
        let data =
            SyntheticData::generate(SyntheticConfig { n_persons: 300, n_items: 100, ..Default::default() })
                .expect("valid config");
        let dataset =
            data.dataset(&WeightConfig::default(), &IdentityRules::default()).expect("valid events");
        let profiles = fit_profiles(&dataset, &dataset.matrix(), &ProfileParams::default()).unwrap();
        let report = &profiles.report;
        let auc = report.propensity.holdout_auc.expect("propensity auc");
        assert!(auc > 0.6, "{report:?}");
        assert!(report.churn.holdout_auc.is_some(), "{report:?}");
        assert_eq!(profiles.purchase_propensity.as_ref().map(Vec::len), Some(dataset.n_users()));
        assert!(profiles.churn_risk.iter().flatten().all(|p| (0.0..=1.0).contains(p)));
        assert!(profiles.segments.len() == 5 && profiles.segment.len() == dataset.n_users());
        let shares = profiles.category_affinity.iter().map(|a| a.iter().map(|c| c.1).sum::<f32>());
        assert!(shares.into_iter().all(|s| s <= 1.0 + 1e-5));
    }
}
