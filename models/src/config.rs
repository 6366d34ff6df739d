//! The training configuration: which models to fit and every hyperparameter, with
//! documented defaults. The trainer reads it from TOML; an unknown key is an error that
//! names it (every table denies unknown fields).

use datasets::dataset::WeightConfig;
use datasets::identity::IdentityLimits;
use serde::{Deserialize, Serialize};

use crate::als::AlsParams;
use crate::blend::BlendParams;
use crate::content::ContentParams;
use crate::ease::EaseParams;
use crate::error::{Error, Result};
use crate::item_knn::ItemKnnParams;
use crate::popularity::PopularityParams;
use crate::profile::ProfileParams;

/// The models omnirec can train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Global and per-category popularity (the cold-start fallback).
    Popularity,
    /// Item-based nearest neighbours.
    ItemKnn,
    /// Implicit alternating least squares.
    Als,
    /// Closed-form shallow autoencoder.
    Ease,
    /// TF-IDF content similarity over the catalog.
    Content,
}

impl ModelKind {
    /// Every kind, in training order.
    pub const ALL: [ModelKind; 5] =
        [ModelKind::Popularity, ModelKind::ItemKnn, ModelKind::Als, ModelKind::Ease, ModelKind::Content];

    /// The model's name, as used in configs, blend weights and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Popularity => "popularity",
            ModelKind::ItemKnn => "item_knn",
            ModelKind::Als => "als",
            ModelKind::Ease => "ease",
            ModelKind::Content => "content",
        }
    }
}

/// `[models]`: which models to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// The models to train (default: all five).
    pub enabled: Vec<ModelKind>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig { enabled: ModelKind::ALL.to_vec() }
    }
}

/// Everything the trainer needs to know; every field has a documented default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Which models to train.
    pub models: ModelsConfig,
    /// Popularity settings.
    pub popularity: PopularityParams,
    /// Item-kNN settings.
    pub item_knn: ItemKnnParams,
    /// ALS settings.
    pub als: AlsParams,
    /// EASE settings.
    pub ease: EaseParams,
    /// Content model settings.
    pub content: ContentParams,
    /// Blend weights and tuning.
    pub blend: BlendParams,
    /// Derived profile attributes.
    pub profiles: ProfileParams,
    /// Event weighting (`[weights]`).
    pub weights: WeightConfig,
    /// Identity resolution limits.
    pub identity: IdentityLimits,
}

impl TrainConfig {
    /// Validates every section, so a bad value fails before any work starts.
    pub fn validate(&self) -> Result<()> {
        if self.models.enabled.is_empty() {
            return Err(Error::InvalidParam {
                name: "models.enabled",
                reason: "must name at least one model".into(),
            });
        }
        self.popularity.validate()?;
        self.als.validate()?;
        self.ease.validate()?;
        self.item_knn.validate()?;
        self.content.validate()?;
        self.blend.validate()?;
        self.profiles.validate()?;
        self.weights.validate()?;
        Ok(())
    }

    /// Whether `kind` is enabled.
    pub fn is_enabled(&self, kind: ModelKind) -> bool {
        self.models.enabled.contains(&kind)
    }
}
