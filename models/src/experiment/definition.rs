//! What an experiment is: the placements it covers, its variants and their traffic shares, its
//! time span, and how it is analysed. Persisted as JSON by the server; validated here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::serve::rules::PlacementConfig;

/// The longest experiment name, in bytes.
pub const MAX_NAME: usize = 64;
/// The most variants one experiment has.
pub const MAX_VARIANTS: usize = 10;

/// A metric an experiment reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Share of exposed persons with an attributed purchase (per person, 0 or 1).
    #[default]
    ConversionRate,
    /// Attributed revenue per exposed person (winsorised when the analysis says so).
    RevenuePerPerson,
    /// Attributed clicks per exposure (a ratio metric: clicks and exposures per person).
    ClickThroughRate,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 3] = [Metric::ConversionRate, Metric::RevenuePerPerson, Metric::ClickThroughRate];

    /// A stable label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Metric::ConversionRate => "conversion_rate",
            Metric::RevenuePerPerson => "revenue_per_person",
            Metric::ClickThroughRate => "click_through_rate",
        }
    }
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Its name, unique within the experiment.
    pub name: String,
    /// Its share of the traffic (shares are normalised by their sum; 0 takes no traffic).
    pub share: f64,
    /// The model version that answers it (`None`: the production model).
    #[serde(default)]
    pub model: Option<String>,
    /// Placement settings that replace the covered placement's own (a partial placement:
    /// `weights`, `max_per_category`, `boosts`, …).
    #[serde(default)]
    pub overrides: serde_json::Map<String, serde_json::Value>,
    /// A non-personalised control: popular items only, under the placement's rules.
    #[serde(default)]
    pub popular: bool,
}

/// How an experiment is analysed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Analysis {
    /// The variant the others are compared with (default: the first).
    pub control: Option<String>,
    /// An outcome counts for an exposure of its item this many days before it (when the
    /// event names no recommendation).
    pub window_days: f64,
    /// Significance level of intervals and tests.
    pub alpha: f64,
    /// Per-person revenue is capped at this quantile of all exposed persons' (`None`: not
    /// capped).
    pub winsorize: Option<f64>,
    /// CUPED: adjust per-person values by each person's activity in the store before the
    /// experiment started.
    pub cuped: bool,
    /// Anytime-valid intervals (safe to look at every day) instead of fixed-horizon ones.
    pub sequential: bool,
    /// The number of persons at which anytime-valid intervals are tightest.
    pub sequential_tuning: f64,
    /// The smallest relative lift worth detecting; the report notes when the experiment is
    /// underpowered for it.
    pub minimum_detectable_effect: f64,
    /// Keep persons exposed to more than one variant (after a merge) in the analysis.
    pub include_mixed: bool,
}

impl Default for Analysis {
    /// A 7-day window, α = 0.05, revenue capped at its 99th percentile, CUPED on, fixed-horizon
    /// intervals (anytime-valid tuned for 10,000 persons when on), a 5 % minimum detectable
    /// effect, mixed persons left out.
    fn default() -> Self {
        Analysis {
            control: None,
            window_days: 7.0,
            alpha: 0.05,
            winsorize: Some(0.99),
            cuped: true,
            sequential: false,
            sequential_tuning: 10_000.0,
            minimum_detectable_effect: 0.05,
            include_mixed: false,
        }
    }
}

/// An experiment; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Its name: letters, digits, `-` and `_`.
    pub name: String,
    /// The placements it covers; a request for one of them while the experiment runs is
    /// answered by the person's variant.
    pub placements: Vec<String>,
    /// The arms.
    pub variants: Vec<Variant>,
    /// When it starts, seconds since the epoch.
    pub start: i64,
    /// When it ends (`None`: until stopped).
    #[serde(default)]
    pub end: Option<i64>,
    /// The metric that decides.
    #[serde(default)]
    pub primary_metric: Metric,
    /// Metrics that must not get worse.
    #[serde(default)]
    pub guardrails: Vec<Metric>,
    /// How it is analysed.
    #[serde(default)]
    pub analysis: Analysis,
    /// When it was stopped, if it was.
    #[serde(default)]
    pub stopped_at: Option<i64>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Experiment { field: field.into(), reason: reason.into() }
}

impl Experiment {
    /// Checks the definition: a usable name, covered placements that exist (`placements`),
    /// 2 to [`MAX_VARIANTS`] variants with distinct names and finite shares ≥ 0 of which at
    /// least two take traffic, overrides that make a valid placement, a control among the
    /// variants, a sane analysis and time span.
    pub fn validate(&self, placements: &BTreeMap<String, PlacementConfig>) -> Result<()> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_NAME
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(invalid("name", format!("must be 1 to {MAX_NAME} letters, digits, `-` or `_`")));
        }
        if self.placements.is_empty() {
            return Err(invalid("placements", "must name at least one placement"));
        }
        for (i, placement) in self.placements.iter().enumerate() {
            if !placements.contains_key(placement) {
                return Err(invalid(format!("placements[{i}]"), format!("`{placement}` is not a placement")));
            }
            if self.placements[..i].contains(placement) {
                return Err(invalid(format!("placements[{i}]"), format!("`{placement}` is named twice")));
            }
        }
        if !(2..=MAX_VARIANTS).contains(&self.variants.len()) {
            return Err(invalid("variants", format!("must have 2 to {MAX_VARIANTS} variants")));
        }
        for (i, variant) in self.variants.iter().enumerate() {
            let field = |f: &str| format!("variants[{i}].{f}");
            let ok = !variant.name.is_empty()
                && variant.name.len() <= MAX_NAME
                && variant.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(invalid(
                    field("name"),
                    format!("must be 1 to {MAX_NAME} letters, digits, `-` or `_`"),
                ));
            }
            if self.variants[..i].iter().any(|v| v.name == variant.name) {
                return Err(invalid(field("name"), format!("`{}` names two variants", variant.name)));
            }
            if !(variant.share.is_finite() && (0.0..=1e6).contains(&variant.share)) {
                return Err(invalid(field("share"), "must be a number between 0 and 1000000"));
            }
            for placement in &self.placements {
                self.placement(i, placement, &placements[placement]).map_err(|e| match e {
                    Error::Experiment { reason, .. } => invalid(field("overrides"), reason),
                    other => invalid(field("overrides"), other.to_string()),
                })?;
            }
        }
        if self.variants.iter().filter(|v| v.share > 0.0).count() < 2 {
            return Err(invalid("variants", "at least two variants must take traffic (share > 0)"));
        }
        if let Some(control) = &self.analysis.control
            && !self.variants.iter().any(|v| &v.name == control)
        {
            return Err(invalid("analysis.control", format!("`{control}` is not a variant")));
        }
        let a = &self.analysis;
        let checks = [
            (
                a.window_days.is_finite() && a.window_days > 0.0 && a.window_days <= 365.0,
                "analysis.window_days",
                "must be in (0, 365]",
            ),
            (a.alpha > 0.0 && a.alpha < 0.5, "analysis.alpha", "must be in (0, 0.5)"),
            (a.winsorize.is_none_or(|q| q > 0.5 && q <= 1.0), "analysis.winsorize", "must be in (0.5, 1]"),
            (
                a.sequential_tuning.is_finite() && a.sequential_tuning >= 10.0,
                "analysis.sequential_tuning",
                "must be at least 10",
            ),
            (
                a.minimum_detectable_effect.is_finite() && a.minimum_detectable_effect > 0.0,
                "analysis.minimum_detectable_effect",
                "must be > 0",
            ),
        ];
        for (holds, field, reason) in checks {
            if !holds {
                return Err(invalid(field, reason));
            }
        }
        if let Some(end) = self.end
            && end <= self.start
        {
            return Err(invalid("end", "must be after start"));
        }
        Ok(())
    }

    /// The index of the control variant.
    pub fn control(&self) -> usize {
        let named = self.analysis.control.as_ref();
        named.and_then(|c| self.variants.iter().position(|v| &v.name == c)).unwrap_or(0)
    }

    /// The normalised traffic shares, in variant order.
    pub fn shares(&self) -> Vec<f64> {
        let total: f64 = self.variants.iter().map(|v| v.share).sum();
        self.variants.iter().map(|v| if total > 0.0 { v.share / total } else { 0.0 }).collect()
    }

    /// Whether it assigns requests at `now`: started, not ended, not stopped.
    pub fn is_running(&self, now: i64) -> bool {
        now >= self.start && self.end.is_none_or(|end| now < end) && self.stopped_at.is_none()
    }

    /// The first placement this experiment shares with `other` while both run (their spans
    /// overlap and neither is stopped): a placement's requests enrol in one experiment only, so
    /// the later one would see none of them.
    pub fn contends_with<'a>(&'a self, other: &Experiment) -> Option<&'a str> {
        if self.stopped_at.is_some() || other.stopped_at.is_some() {
            return None;
        }
        let ends = |e: &Experiment| e.end.unwrap_or(i64::MAX);
        if self.start >= ends(other) || other.start >= ends(self) {
            return None;
        }
        self.placements.iter().find(|p| other.placements.contains(p)).map(String::as_str)
    }

    /// Whether `other` changes what this experiment assigns or what a variant is: variants,
    /// shares, a variant's model, overrides or popular control, covered placements or the
    /// start (refused while it runs: the report would add up two treatments under one name;
    /// start a new experiment instead).
    pub fn changes_assignment(&self, other: &Experiment) -> bool {
        let arms = |e: &Experiment| {
            e.variants
                .iter()
                .map(|v| (v.name.clone(), v.share.to_bits(), v.model.clone(), v.overrides.clone(), v.popular))
                .collect::<Vec<_>>()
        };
        arms(self) != arms(other) || self.placements != other.placements || self.start != other.start
    }

    /// The placement variant `index` serves for `base` (the covered placement's settings):
    /// its overrides applied, popular items only when it is the non-personalised control.
    pub fn placement(&self, index: usize, name: &str, base: &PlacementConfig) -> Result<PlacementConfig> {
        let Some(variant) = self.variants.get(index) else {
            return Err(invalid("variants", format!("no variant {index}")));
        };
        let mut value = serde_json::to_value(base).map_err(|e| invalid("overrides", e.to_string()))?;
        if let Some(fields) = value.as_object_mut() {
            for (key, field) in &variant.overrides {
                fields.insert(key.clone(), field.clone());
            }
            if variant.popular {
                fields.insert("personalized".into(), serde_json::Value::Bool(false));
            }
        }
        let config: PlacementConfig =
            serde_json::from_value(value).map_err(|e| invalid("overrides", e.to_string()))?;
        if config.kind != base.kind {
            return Err(invalid("overrides", "cannot change the placement's kind"));
        }
        config.validate(name).map_err(|e| invalid("overrides", e.to_string()))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placements() -> BTreeMap<String, PlacementConfig> {
        [("home".to_string(), PlacementConfig::default())].into()
    }

    fn experiment() -> Experiment {
        serde_json::from_value(serde_json::json!({
            "name": "blend-vs-popular",
            "placements": ["home"],
            "variants": [
                { "name": "control", "share": 1, "popular": true },
                { "name": "blend", "share": 1, "overrides": { "max_per_category": 2 } }
            ],
            "start": 1_000
        }))
        .unwrap()
    }

    #[test]
    fn a_placement_named_twice_is_refused() {
        let twice = Experiment { placements: vec!["home".into(), "home".into()], ..experiment() };
        let error = twice.validate(&placements()).unwrap_err().to_string();
        assert!(error.contains("placements[1]") && error.contains("named twice"), "{error}");
    }

    #[test]
    fn experiments_contend_for_a_placement_only_while_both_run() {
        let a = experiment();
        let b = Experiment { name: "other".into(), ..experiment() };
        assert_eq!(a.contends_with(&b), Some("home"));
        let later = Experiment { start: 5_000, ..b.clone() };
        assert_eq!(a.contends_with(&later), Some("home"), "a runs without an end");
        let ended = Experiment { end: Some(5_000), ..a.clone() };
        assert_eq!(ended.contends_with(&later), None, "one ends when the other starts");
        assert_eq!(later.contends_with(&ended), None);
        let stopped = Experiment { stopped_at: Some(2_000), ..b.clone() };
        assert_eq!(a.contends_with(&stopped), None);
        let elsewhere = Experiment { placements: vec!["email".into()], ..b };
        assert_eq!(a.contends_with(&elsewhere), None);
    }

    #[test]
    fn a_valid_experiment_and_its_variants_placements() {
        let e = experiment();
        e.validate(&placements()).unwrap();
        assert_eq!(e.shares(), [0.5, 0.5]);
        assert_eq!(e.control(), 0);
        let base = PlacementConfig::default();
        let control = e.placement(0, "home", &base).unwrap();
        assert!(!control.personalized && base.personalized);
        let blend = e.placement(1, "home", &base).unwrap();
        assert_eq!(blend.max_per_category, Some(2));
        assert_eq!(blend.weights, base.weights);
        assert!(e.is_running(1_000) && !e.is_running(999));
        assert!(!Experiment { stopped_at: Some(5), ..e.clone() }.is_running(2_000));
        assert!(!Experiment { end: Some(1_500), ..e }.is_running(1_500));
    }

    #[test]
    fn invalid_definitions_name_their_field() {
        let field_of = |e: Experiment| match e.validate(&placements()) {
            Err(Error::Experiment { field, .. }) => field,
            other => panic!("expected an experiment error, got {other:?}"),
        };
        let mut e = experiment();
        e.name = "a b".into();
        assert_eq!(field_of(e), "name");
        let mut e = experiment();
        e.placements = vec!["nope".into()];
        assert_eq!(field_of(e), "placements[0]");
        let mut e = experiment();
        e.variants[1].share = f64::NAN;
        assert_eq!(field_of(e), "variants[1].share");
        let mut e = experiment();
        e.variants[1].share = 0.0;
        assert_eq!(field_of(e), "variants");
        let mut e = experiment();
        e.variants[1].name = "control".into();
        assert_eq!(field_of(e), "variants[1].name");
        let mut e = experiment();
        e.variants[1].overrides.insert("max_k".into(), serde_json::json!(0));
        assert_eq!(field_of(e), "variants[1].overrides");
        let mut e = experiment();
        e.variants[1].overrides.insert("no_such_rule".into(), serde_json::json!(1));
        assert_eq!(field_of(e), "variants[1].overrides");
        let mut e = experiment();
        e.analysis.control = Some("nobody".into());
        assert_eq!(field_of(e), "analysis.control");
        let mut e = experiment();
        e.end = Some(e.start);
        assert_eq!(field_of(e), "end");
    }

    #[test]
    fn variants_shares_and_placements_are_what_a_running_experiment_cannot_change() {
        let e = experiment();
        let mut later = e.clone();
        later.analysis.window_days = 3.0;
        assert!(!e.changes_assignment(&later));
        later.variants[0].share = 3.0;
        assert!(e.changes_assignment(&later));
        // What a variant serves: another model, other settings, or the popular control.
        let changed = |change: &dyn Fn(&mut Variant)| {
            let mut later = e.clone();
            change(&mut later.variants[1]);
            e.changes_assignment(&later)
        };
        assert!(changed(&|v| v.model = Some("v9".into())));
        assert!(changed(&|v| {
            v.overrides.insert("max_per_category".into(), serde_json::json!(1));
        }));
        assert!(changed(&|v| v.popular = !v.popular));
    }
}
