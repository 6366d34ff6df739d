//! `/v1/experiments` and `/v1/exposures`: A/B experiments of model versions and placement
//! settings, keyed on the stitched person. Definitions (role `admin`), reports (role `read`),
//! exposures reported by channels that send recommendations themselves (role `ingest`). The
//! assignment lives in `crate::lab`, attribution and statistics in
//! `models::experiment`; this module translates.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use models::experiment::report::{MetricComparison, Report};
use models::experiment::stats::{Estimate, SRM_ALPHA, Srm};
use models::experiment::{Analysis, Experiment, Metric, Variant};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::JsonBody;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::pool::on_pool;
use crate::state::AppState;

/// A metric, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricName {
    /// Share of exposed persons with an attributed purchase.
    ConversionRate,
    /// Attributed revenue per exposed person.
    RevenuePerPerson,
    /// Attributed clicks per exposure.
    ClickThroughRate,
}

impl From<MetricName> for Metric {
    fn from(name: MetricName) -> Self {
        match name {
            MetricName::ConversionRate => Metric::ConversionRate,
            MetricName::RevenuePerPerson => Metric::RevenuePerPerson,
            MetricName::ClickThroughRate => Metric::ClickThroughRate,
        }
    }
}

/// One arm.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantBody {
    /// Its name: letters, digits, `-` and `_`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// Its traffic share (shares are normalised by their sum).
    #[schema(minimum = 0, maximum = 1000000)]
    pub share: f64,
    /// The model version that answers it (default: the production model).
    #[serde(default)]
    pub model: Option<String>,
    /// Settings of the covered placement to replace (`weights`, `max_per_category`, `boosts`, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub overrides: serde_json::Map<String, serde_json::Value>,
    /// A non-personalised control: popular items only, under the placement's rules.
    #[serde(default)]
    pub popular: bool,
}

/// How the experiment is analysed (every field optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisBody {
    /// The variant the others are compared with (default: the first).
    pub control: Option<String>,
    /// Attribution window in days (default 7).
    #[schema(exclusive_minimum = 0, maximum = 365)]
    pub window_days: Option<f64>,
    /// Significance level (default 0.05).
    #[schema(exclusive_minimum = 0, exclusive_maximum = 0.5)]
    pub alpha: Option<f64>,
    /// Cap per-person revenue at this quantile of the positive revenues (default 0.99); 1
    /// keeps every value.
    #[schema(exclusive_minimum = 0.5, maximum = 1)]
    pub winsorize: Option<f64>,
    /// CUPED on pre-experiment activity (default true).
    pub cuped: Option<bool>,
    /// Anytime-valid (peeking-safe) intervals (default false).
    pub sequential: Option<bool>,
    /// Persons at which anytime-valid intervals are tightest (default 10000).
    #[schema(minimum = 10)]
    pub sequential_tuning: Option<f64>,
    /// The smallest relative lift worth detecting (default 0.05).
    #[schema(exclusive_minimum = 0)]
    pub minimum_detectable_effect: Option<f64>,
    /// Analyse persons exposed to more than one variant under their first (default false).
    pub include_mixed: Option<bool>,
}

impl AnalysisBody {
    fn into_core(self) -> Analysis {
        let d = Analysis::default();
        Analysis {
            control: self.control,
            window_days: self.window_days.unwrap_or(d.window_days),
            alpha: self.alpha.unwrap_or(d.alpha),
            winsorize: match self.winsorize {
                // 1 keeps every value: no cap. Above 1 is no quantile, and validation says so.
                Some(1.0) => None,
                Some(q) => Some(q),
                None => d.winsorize,
            },
            cuped: self.cuped.unwrap_or(d.cuped),
            sequential: self.sequential.unwrap_or(d.sequential),
            sequential_tuning: self.sequential_tuning.unwrap_or(d.sequential_tuning),
            minimum_detectable_effect: self.minimum_detectable_effect.unwrap_or(d.minimum_detectable_effect),
            include_mixed: self.include_mixed.unwrap_or(d.include_mixed),
        }
    }
}

/// Body of `PUT /v1/experiments/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentBody {
    /// The placements it covers.
    pub placements: Vec<String>,
    /// 2 to 10 arms.
    pub variants: Vec<VariantBody>,
    /// When it starts (RFC 3339 or seconds since the epoch; default: now).
    #[serde(default)]
    pub start: Option<String>,
    /// When it ends (default: when stopped).
    #[serde(default)]
    pub end: Option<String>,
    /// The metric that decides (default `conversion_rate`).
    #[serde(default)]
    pub primary_metric: Option<MetricName>,
    /// Metrics that must not get worse.
    #[serde(default)]
    pub guardrails: Vec<MetricName>,
    /// How it is analysed.
    #[serde(default)]
    pub analysis: Option<AnalysisBody>,
}

/// An experiment as defined, with its state.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentResponse {
    /// Its name.
    pub name: String,
    /// `scheduled`, `running`, `ended` or `stopped`.
    pub state: &'static str,
    /// The definition (as `PUT` takes it, times in seconds since the epoch, every default
    /// filled in).
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
}

/// Every experiment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExperimentsResponse {
    /// By name.
    pub experiments: Vec<ExperimentResponse>,
}

fn state_of(experiment: &Experiment, now: i64) -> &'static str {
    if experiment.stopped_at.is_some() {
        "stopped"
    } else if now < experiment.start {
        "scheduled"
    } else if experiment.end.is_some_and(|end| now >= end) {
        "ended"
    } else {
        "running"
    }
}

fn describe(experiment: &Experiment, now: i64) -> ExperimentResponse {
    ExperimentResponse {
        name: experiment.name.clone(),
        state: state_of(experiment, now),
        definition: serde_json::to_value(experiment).unwrap_or_default(),
    }
}

pub(super) fn time(field: &str, raw: &str) -> Result<i64, ApiError> {
    datasets::schema::parse_timestamp(raw).map_err(|reason| ApiError::field(field, reason))
}

fn find(state: &AppState, name: &str) -> Result<Arc<Experiment>, ApiError> {
    let experiments = state.experiments.load();
    experiments.iter().find(|e| e.name == name).cloned().ok_or_else(|| {
        ApiError::at(ErrorCode::UnknownExperiment, "name", format!("no experiment named `{name}`"))
    })
}

/// Stores `experiment` (replacing the one of its name), then compiles the served views again.
async fn save(state: &Arc<AppState>, experiment: Experiment, created_at: i64) -> Result<(), ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    let now = cli::unix_now();
    let record = store::ExperimentRecord {
        name: experiment.name.clone(),
        definition: serde_json::to_string(&experiment).map_err(ApiError::internal)?,
        created_at,
        updated_at: now,
    };
    let state = Arc::clone(state);
    on_pool(move || -> Result<(), ApiError> {
        store.put_experiment(record).map_err(ApiError::store)?;
        let mut experiments: Vec<Arc<Experiment>> =
            state.experiments.load().iter().filter(|e| e.name != experiment.name).cloned().collect();
        experiments.push(Arc::new(experiment));
        experiments.sort_by(|a, b| a.name.cmp(&b.name));
        state.experiments.store(Arc::new(experiments));
        state.rebuild_views().map_err(ApiError::internal)
    })
    .await?
}

/// Defines an experiment, or changes one that has not started (or only its analysis, end and
/// guardrails while it runs: its variants, shares, placements and start cannot change once
/// it has started; start a new one).
#[utoipa::path(
    put,
    path = "/v1/experiments/{name}",
    tag = "experiments",
    params(("name" = String, Path, description = "The experiment's name: letters, digits, `-` and `_`")),
    request_body = ExperimentBody,
    responses(
        (status = 200, description = "Defined", body = ExperimentResponse),
        (status = 400, description = "Malformed JSON or an invalid field (named in `field`)", body = ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 409, description = "The experiment has started and the change would move persons between variants, it was stopped, or another experiment covers one of its placements at the same time", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = ErrorBody),
        (status = 422, description = "Well-formed JSON of the wrong shape", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn put_experiment(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<ExperimentBody>,
) -> Result<Json<ExperimentResponse>, ApiError> {
    if state.store.is_none() {
        return Err(ApiError::no_store());
    }
    let now = cli::unix_now();
    let experiment = Experiment {
        name: name.clone(),
        placements: body.placements,
        variants: body
            .variants
            .into_iter()
            .map(|v| Variant {
                name: v.name,
                share: v.share,
                model: v.model,
                overrides: v.overrides,
                popular: v.popular,
            })
            .collect(),
        start: body.start.as_deref().map(|s| time("start", s)).transpose()?.unwrap_or(now),
        end: body.end.as_deref().map(|s| time("end", s)).transpose()?,
        primary_metric: body.primary_metric.map_or(Metric::default(), Metric::from),
        guardrails: body.guardrails.into_iter().map(Metric::from).collect(),
        analysis: body.analysis.unwrap_or_default().into_core(),
        stopped_at: None,
    };
    let placements = state.config.placements();
    experiment.validate(&placements).map_err(|e| match e {
        models::Error::Experiment { field, reason } => ApiError::field(&field, reason),
        other => ApiError::field("body", other.to_string()),
    })?;
    // Every variant's model must be loaded and its placement must fit it.
    let production = state.current.load_full();
    let versions = state.versions.load_full();
    for (i, variant) in experiment.variants.iter().enumerate() {
        let serving = match &variant.model {
            None => &production,
            Some(version) if version == production.model.version() => &production,
            Some(version) => versions.get(version).ok_or_else(|| {
                ApiError::field(
                    &format!("variants[{i}].model"),
                    format!("model version `{version}` is not loaded"),
                )
            })?,
        };
        for placement in &experiment.placements {
            let config =
                experiment.placement(i, placement, &placements[placement]).map_err(ApiError::internal)?;
            let trial = serving
                .model
                .engine
                .view(serving.view.catalog.clone(), &[(placement.clone(), config)].into());
            trial.map_err(|e| ApiError::field(&format!("variants[{i}].overrides"), e.to_string()))?;
        }
    }
    if let Some(end) = experiment.end
        && end <= now
        && state.experiments.load().iter().all(|e| e.name != name)
    {
        return Err(ApiError::field("end", "is in the past: the experiment would never run"));
    }
    let defined = state.experiments.load();
    if let Some((other, placement)) =
        defined.iter().filter(|e| e.name != name).find_map(|e| Some((e, experiment.contends_with(e)?)))
    {
        let at = experiment.placements.iter().position(|p| p == placement).unwrap_or(0);
        return Err(ApiError::at(
            ErrorCode::ExperimentRunning,
            &format!("placements[{at}]"),
            format!(
                "experiment `{}` covers placement `{placement}` at the same time: a request enrols in one \
                 experiment only; stop it, or choose another placement or time",
                other.name
            ),
        ));
    }
    let mut created_at = now;
    if let Some(old) = defined.iter().find(|e| e.name == name) {
        if old.stopped_at.is_some() {
            return Err(ApiError::at(
                ErrorCode::ExperimentRunning,
                "name",
                format!("experiment `{name}` was stopped; names are not reused, define a new one"),
            ));
        }
        if now >= old.start && old.changes_assignment(&experiment) {
            return Err(ApiError::at(
                ErrorCode::ExperimentRunning,
                "variants",
                format!(
                    "experiment `{name}` has started: its variants (shares, models, overrides), placements \
                     and start cannot change (persons would move between variants, or a variant's results \
                     would mix two treatments); stop it and define a new one"
                ),
            ));
        }
        let stored = state.store.as_ref().map(|s| s.experiments()).transpose().map_err(ApiError::store)?;
        created_at = stored.into_iter().flatten().find(|r| r.name == name).map_or(now, |r| r.created_at);
    }
    save(&state, experiment.clone(), created_at).await?;
    Ok(Json(describe(&experiment, now)))
}

/// Stops an experiment: from now on its placements answer with production again; its report
/// stays.
#[utoipa::path(
    post,
    path = "/v1/experiments/{name}/stop",
    tag = "experiments",
    params(("name" = String, Path, description = "The experiment's name")),
    responses(
        (status = 200, description = "Stopped (or already stopped)", body = ExperimentResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn stop_experiment(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ExperimentResponse>, ApiError> {
    let now = cli::unix_now();
    let experiment = find(&state, &name)?;
    if experiment.stopped_at.is_some() {
        return Ok(Json(describe(&experiment, now)));
    }
    let stopped = Experiment { stopped_at: Some(now), ..(*experiment).clone() };
    let stored =
        state.store.as_ref().ok_or_else(ApiError::no_store)?.experiments().map_err(ApiError::store)?;
    let created_at = stored.iter().find(|r| r.name == name).map_or(now, |r| r.created_at);
    save(&state, stopped.clone(), created_at).await?;
    Ok(Json(describe(&stopped, now)))
}

/// Every experiment, with its state.
#[utoipa::path(
    get,
    path = "/v1/experiments",
    tag = "experiments",
    responses(
        (status = 200, description = "Every experiment", body = ExperimentsResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the read role", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn list_experiments(State(state): State<Arc<AppState>>) -> Json<ExperimentsResponse> {
    let now = cli::unix_now();
    Json(ExperimentsResponse {
        experiments: state.experiments.load().iter().map(|e| describe(e, now)).collect(),
    })
}

/// One experiment.
#[utoipa::path(
    get,
    path = "/v1/experiments/{name}",
    tag = "experiments",
    params(("name" = String, Path, description = "The experiment's name")),
    responses(
        (status = 200, description = "The experiment", body = ExperimentResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the read role", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn get_experiment(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ExperimentResponse>, ApiError> {
    let experiment = find(&state, &name)?;
    Ok(Json(describe(&experiment, cli::unix_now())))
}

/// An effect with its interval and p-value.
#[derive(Debug, Serialize, ToSchema)]
pub struct EstimateBody {
    /// The effect (absolute difference, or relative lift: 0.1 = +10 %).
    pub effect: f64,
    /// Lower end of the interval.
    pub lower: f64,
    /// Upper end.
    pub upper: f64,
    /// Two-sided p-value (anytime-valid when the analysis is sequential).
    pub p_value: f64,
}

impl From<&Estimate> for EstimateBody {
    fn from(e: &Estimate) -> Self {
        EstimateBody { effect: e.effect, lower: e.lower, upper: e.upper, p_value: e.p_value }
    }
}

/// One variant against the control on one metric.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComparisonBody {
    /// The variant.
    pub variant: String,
    /// The metric.
    pub metric: &'static str,
    /// Whether it is the primary metric (else a guardrail).
    pub primary: bool,
    /// The control's value.
    pub control_value: f64,
    /// The variant's value.
    pub variant_value: f64,
    /// Relative lift (variant / control − 1); absent when it cannot be computed.
    pub relative: Option<EstimateBody>,
    /// Absolute difference.
    pub absolute: Option<EstimateBody>,
    /// The relative lift's p-value after Holm's correction over every comparison.
    pub p_adjusted: Option<f64>,
    /// Whether the lift is significant after the correction.
    pub significant: bool,
    /// The smallest relative lift detectable at the current sizes (80 % power).
    pub detectable_lift: Option<f64>,
}

/// A sample-ratio check.
#[derive(Debug, Serialize, ToSchema)]
pub struct SrmBody {
    /// Chi-square statistic against the configured shares.
    pub chi2: f64,
    /// Its p-value.
    pub p_value: f64,
    /// Whether it is below 0.001: assignment or logging is broken.
    pub warning: bool,
}

fn srm_body(srm: &Option<Srm>) -> Option<SrmBody> {
    srm.as_ref().map(|s| SrmBody { chi2: s.chi2, p_value: s.p_value, warning: s.p_value < SRM_ALPHA })
}

/// One channel within a variant.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelBody {
    /// Persons exposed on it.
    pub persons: u64,
    /// Exposures on it.
    pub exposures: u64,
    /// Attributed purchases of its exposures.
    pub purchases: u64,
    /// Their revenue.
    pub revenue: f64,
}

/// What one variant did.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantReport {
    /// Its name.
    pub name: String,
    /// Whether it is the control.
    pub control: bool,
    /// Its configured share.
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
    /// Attributed revenue.
    pub revenue: f64,
    /// Clicks per exposure.
    pub click_through_rate: f64,
    /// Converted persons per exposed person.
    pub conversion_rate: f64,
    /// Attributed revenue per exposed person.
    pub revenue_per_person: f64,
    /// Attributed purchases on another channel than their exposure.
    pub cross_channel_purchases: u64,
    /// Their revenue.
    pub cross_channel_revenue: f64,
    /// Per channel of exposure.
    pub channels: BTreeMap<String, ChannelBody>,
}

/// An experiment's report.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportResponse {
    /// The experiment.
    pub experiment: String,
    /// Its state.
    pub state: &'static str,
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// Whether any sample-ratio check warns (then do not trust the comparisons).
    pub srm_warning: bool,
    /// Persons per variant against the shares.
    pub srm: Option<SrmBody>,
    /// The same per channel of exposure: a channel that drops one variant's exposures warns
    /// here while the overall check may not.
    pub srm_by_channel: BTreeMap<String, SrmBody>,
    /// Per variant.
    pub variants: Vec<VariantReport>,
    /// Every non-control variant against the control, primary metric first.
    pub comparisons: Vec<ComparisonBody>,
    /// Persons exposed to more than one variant.
    pub mixed_persons: u64,
    /// Whether they were left out.
    pub mixed_excluded: bool,
    /// Outcomes attributed to an exposure.
    pub attributed: u64,
    /// Of them, on another channel than the exposure.
    pub cross_channel: u64,
    /// Whether the intervals are anytime-valid.
    pub sequential: bool,
    /// Whether CUPED adjusted any comparison.
    pub cuped: bool,
    /// The revenue cap applied (winsorising).
    pub revenue_cap: Option<f64>,
    /// Sentences for the reader: sample-ratio mismatch, underpowered comparisons, mixed persons.
    pub notes: Vec<String>,
}

/// The wire form of a report.
pub fn report_response(experiment: &Experiment, report: &Report, now: i64) -> ReportResponse {
    let alpha = experiment.analysis.alpha;
    let comparison = |c: &MetricComparison| ComparisonBody {
        variant: experiment.variants[c.variant].name.clone(),
        metric: c.metric.as_str(),
        primary: c.primary,
        control_value: c.control_value,
        variant_value: c.variant_value,
        relative: c.comparison.as_ref().map(|x| EstimateBody::from(&x.relative)),
        absolute: c.comparison.as_ref().map(|x| EstimateBody::from(&x.absolute)),
        p_adjusted: c.p_adjusted,
        significant: c.p_adjusted.is_some_and(|p| p < alpha),
        detectable_lift: c.detectable_lift,
    };
    ReportResponse {
        experiment: experiment.name.clone(),
        state: state_of(experiment, now),
        generated_at: datasets::schema::format_timestamp(now),
        srm_warning: report.srm.warns(),
        srm: srm_body(&report.srm.overall),
        srm_by_channel: report
            .srm
            .by_channel
            .iter()
            .filter_map(|(c, s)| Some((c.clone(), srm_body(s)?)))
            .collect(),
        variants: report
            .variants
            .iter()
            .enumerate()
            .map(|(i, v)| VariantReport {
                name: v.name.clone(),
                control: i == report.control,
                share: v.share,
                persons: v.persons,
                exposures: v.exposures,
                clicks: v.clicks,
                converted: v.converted,
                purchases: v.purchases,
                revenue: v.revenue,
                click_through_rate: v.click_through_rate,
                conversion_rate: v.conversion_rate,
                revenue_per_person: v.revenue_per_person,
                cross_channel_purchases: v.cross_channel_purchases,
                cross_channel_revenue: v.cross_channel_revenue,
                channels: v
                    .channels
                    .iter()
                    .map(|(c, n)| {
                        let body = ChannelBody {
                            persons: n.persons,
                            exposures: n.exposures,
                            purchases: n.purchases,
                            revenue: n.revenue,
                        };
                        (c.clone(), body)
                    })
                    .collect(),
            })
            .collect(),
        comparisons: report.comparisons.iter().map(comparison).collect(),
        mixed_persons: report.mixed_persons,
        mixed_excluded: report.mixed_excluded,
        attributed: report.attributed,
        cross_channel: report.cross_channel,
        sequential: report.sequential,
        cuped: !report.cuped.is_empty(),
        revenue_cap: report.revenue_cap,
        notes: report.notes.clone(),
    }
}

/// Computes `experiment`'s report from the store.
pub(crate) async fn compute(state: &Arc<AppState>, experiment: Arc<Experiment>) -> Result<Report, ApiError> {
    let store = state.store.clone().ok_or_else(ApiError::no_store)?;
    on_pool(move || {
        let (exposures, outcomes, pre) =
            crate::lab::report_rows(&store, &experiment).map_err(ApiError::store)?;
        Ok(models::experiment::report::report(&experiment, &exposures, &outcomes, &pre))
    })
    .await?
}

/// The experiment's report: per variant persons, exposures, rates, revenue, per channel and
/// cross-channel; every variant against the control with its lift, interval and p-value;
/// sample-ratio checks overall and per channel. Computed from the store's events, so it
/// survives restarts.
#[utoipa::path(
    get,
    path = "/v1/experiments/{name}/report",
    tag = "experiments",
    params(("name" = String, Path, description = "The experiment's name")),
    responses(
        (status = 200, description = "The report", body = ReportResponse),
        (status = 401, description = "Missing or unknown API key", body = ErrorBody),
        (status = 403, description = "Key lacks the read role", body = ErrorBody),
        (status = 404, description = "No such experiment", body = ErrorBody),
        (status = 408, description = "Took longer than the request timeout", body = ErrorBody),
        (status = 503, description = "The server runs without a data directory", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn experiment_report(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ReportResponse>, ApiError> {
    let experiment = find(&state, &name)?;
    let report = compute(&state, Arc::clone(&experiment)).await?;
    Ok(Json(report_response(&experiment, &report, cli::unix_now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn winsorize_above_one_is_kept_for_validation_to_refuse() {
        let analysis = |q: f64| AnalysisBody { winsorize: Some(q), ..AnalysisBody::default() }.into_core();
        assert_eq!(analysis(1.0).winsorize, None, "1 keeps every value");
        assert_eq!(analysis(0.95).winsorize, Some(0.95));
        assert_eq!(analysis(5.0).winsorize, Some(5.0), "left for validation to refuse");
        assert_eq!(AnalysisBody::default().into_core().winsorize, Analysis::default().winsorize);
    }
}
