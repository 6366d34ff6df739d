//! The training configuration: which models to fit and every hyperparameter, with
//! documented defaults. The trainer reads it from TOML; an unknown key is an error that
//! names it (every table denies unknown fields).

use datasets::dataset::WeightConfig;
use datasets::identity::IdentityRules;
use serde::{Deserialize, Serialize};

use crate::algorithms::als::AlsParams;
use crate::algorithms::content::ContentParams;
use crate::algorithms::ease::EaseParams;
use crate::algorithms::item_knn::ItemKnnParams;
use crate::algorithms::popularity::PopularityParams;
use crate::blend::BlendParams;
use crate::error::{Result, require};
use crate::profile::ProfileParams;
use crate::recommender::ModelKind;

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
    /// Identity resolution: merge limits, placeholders, the hot-identifier guard.
    pub identity: IdentityRules,
}

impl TrainConfig {
    /// Validates every section, so a bad value fails before any work starts.
    pub fn validate(&self) -> Result<()> {
        require(!self.models.enabled.is_empty(), "models.enabled", "must name at least one model")?;
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
