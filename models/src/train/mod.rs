//! Training orchestration: fit every enabled model in parallel, tune the blend on a
//! validation split carved out of the training data, derive profile attributes.

pub mod config;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datasets::dataset::{Dataset, Interaction};
use datasets::recency::Recency;
use datasets::schema::Item;
use datasets::split::{SplitStrategy, split};
use datasets::{ItemIdx, UserIdx};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algorithms::als::AlsModel;
use crate::algorithms::content::ContentModel;
use crate::algorithms::ease::EaseModel;
use crate::algorithms::item_knn::ItemKnnModel;
use crate::algorithms::popularity::PopularityModel;
use crate::blend::tune::{BlendChoice, affordable_users, tune};
use crate::blend::{Blend, Debias, Weights};
use crate::error::{Error, Result};
use crate::metrics::{Candidates, Metrics, Relevant, evaluable_users, evaluate_users, spread};
use crate::profile::{Profiles, fit_profiles};
use crate::progress::Progress;
use crate::recommender::ModelKind;
use crate::recommender::{Fit, History, Recommender, TrainSet};
use crate::train::config::TrainConfig;

/// A fitted model of any kind; what the artifact stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FittedModel {
    /// Popularity.
    Popularity(PopularityModel),
    /// Item-kNN.
    ItemKnn(ItemKnnModel),
    /// ALS.
    Als(AlsModel),
    /// EASE.
    Ease(EaseModel),
    /// Content (boxed: its vectorizer makes it the largest).
    Content(Box<ContentModel>),
}

impl FittedModel {
    /// Checks the model's state for a catalog of `n_items` (sizes agree, indices in range,
    /// numbers finite): run on every decoded artifact and after every fit.
    pub fn check(&self, n_items: usize) -> Result<(), String> {
        match self {
            FittedModel::Popularity(m) => m.check(n_items),
            FittedModel::ItemKnn(m) => m.check(n_items),
            FittedModel::Als(m) => m.check(n_items),
            FittedModel::Ease(m) => m.check(n_items),
            FittedModel::Content(m) => m.check(n_items),
        }
    }

    /// Which model this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            FittedModel::Popularity(_) => ModelKind::Popularity,
            FittedModel::ItemKnn(_) => ModelKind::ItemKnn,
            FittedModel::Als(_) => ModelKind::Als,
            FittedModel::Ease(_) => ModelKind::Ease,
            FittedModel::Content(_) => ModelKind::Content,
        }
    }

    /// The model behind the common contract.
    pub fn as_recommender(&self) -> &dyn Recommender {
        match self {
            FittedModel::Popularity(m) => m,
            FittedModel::ItemKnn(m) => m,
            FittedModel::Als(m) => m,
            FittedModel::Ease(m) => m,
            FittedModel::Content(m) => &**m,
        }
    }
}

/// What happened to one enabled model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    /// The model's name.
    pub name: String,
    /// Wall time of the fit on the full training data.
    pub seconds: f64,
    /// Why it was skipped, if it was (a catalog too large for EASE, no text for content).
    pub skipped: Option<String>,
}

/// The result of [`train`].
#[derive(Debug)]
pub struct Trained {
    /// The fitted models, in [`ModelKind::ALL`] order.
    pub models: Vec<FittedModel>,
    /// One report per enabled model.
    pub reports: Vec<ModelReport>,
    /// Blend weights (tuned, or from the config).
    pub blend_weights: Weights,
    /// Popularity de-bias per model (tuned, or from the config).
    pub blend_debias: Weights,
    /// Each person's own recency applied when scoring (tuned, or from the config).
    pub recency: Recency,
    /// Validation NDCG of the tuned blend, when tuning ran.
    pub tuned_ndcg: Option<f64>,
    /// The same on each half of the tuning persons (see [`crate::blend::tune`]).
    pub tuned_folds: Option<[f64; 2]>,
    /// Derived profile attributes.
    pub profiles: Option<Profiles>,
    /// Why profiles were not derived, if they were not.
    pub profiles_skipped: Option<String>,
    /// Offline metrics of each model and the blend on the validation split (when tuning ran;
    /// on large catalogs a spread sample of its persons, see
    /// [`crate::blend::tune::SCORE_BUDGET`]: `Metrics::n_users` says how many).
    pub validation_metrics: BTreeMap<String, Metrics>,
    /// The training input the models were fitted on.
    pub train_set: TrainSet,
}

impl Trained {
    /// The models behind the common contract, each with its kind.
    pub fn members(&self) -> Vec<(ModelKind, &dyn Recommender)> {
        members(&self.models)
    }

    /// The de-bias divisors of the chosen de-bias over [`Trained::train_set`].
    pub fn debias(&self) -> Debias {
        Debias::new(&self.blend_debias, &self.train_set.log_popularity())
    }

    /// The blend of the models with the chosen weights and `debias` ([`Trained::debias`]).
    pub fn blend<'a>(&'a self, debias: &'a Debias) -> Blend<'a> {
        Blend::new(&self.members(), &self.blend_weights).debiased(debias)
    }
}

/// Fitted models behind the common contract, each with its kind: what a [`Blend`] is made of.
pub fn members(models: &[FittedModel]) -> Vec<(ModelKind, &dyn Recommender)> {
    models.iter().map(|m| (m.kind(), m.as_recommender())).collect()
}

fn fit_one(
    kind: ModelKind,
    train: &TrainSet,
    config: &TrainConfig,
    progress: &dyn Progress,
) -> Result<FittedModel> {
    let started = Instant::now();
    let model = match kind {
        ModelKind::Popularity => FittedModel::Popularity(config.popularity.fit(train)?),
        ModelKind::ItemKnn => FittedModel::ItemKnn(config.item_knn.fit(train)?),
        ModelKind::Als => FittedModel::Als(config.als.fit_with(train, progress)?),
        ModelKind::Ease => FittedModel::Ease(config.ease.fit(train)?),
        ModelKind::Content => FittedModel::Content(Box::new(config.content.fit(train)?)),
    };
    // A model with non-finite numbers would answer garbage or fail at serving time: refuse
    // to ship it, naming the model (overflowing input values are the usual cause).
    model.check(train.n_items()).map_err(|reason| Error::Numerical {
        model: kind.as_str(),
        reason: format!(
            "the fitted model is unusable ({reason}); check the input values for extreme magnitudes"
        ),
    })?;
    if kind != ModelKind::Als {
        progress.step(kind.as_str(), 1, 1, started.elapsed());
    }
    Ok(model)
}

/// Fits every enabled model on `train`, in parallel. A model that cannot be trained on this
/// data ([`Error::Untrainable`]) is skipped with its reason; any other error fails the run.
pub fn fit_models(
    train: &TrainSet,
    config: &TrainConfig,
    progress: &dyn Progress,
) -> Result<(Vec<FittedModel>, Vec<ModelReport>)> {
    let kinds: Vec<ModelKind> = ModelKind::ALL.into_iter().filter(|k| config.is_enabled(*k)).collect();
    let outcomes: Vec<(ModelKind, Duration, Result<FittedModel>)> = kinds
        .par_iter()
        .map(|&kind| {
            let started = Instant::now();
            let model = fit_one(kind, train, config, progress);
            (kind, started.elapsed(), model)
        })
        .collect();
    let mut models = Vec::new();
    let mut reports = Vec::new();
    for (kind, elapsed, outcome) in outcomes {
        let skipped = match outcome {
            Ok(model) => {
                models.push(model);
                None
            }
            Err(Error::Untrainable { reason, .. }) => Some(reason),
            Err(other) => return Err(other),
        };
        reports.push(ModelReport { name: kind.as_str().to_owned(), seconds: elapsed.as_secs_f64(), skipped });
    }
    if models.is_empty() {
        let reasons: Vec<String> =
            reports.iter().map(|r| format!("{}: {}", r.name, r.skipped.as_deref().unwrap_or("?"))).collect();
        return Err(Error::Untrainable { model: "any model", reason: reasons.join("; ") });
    }
    Ok((models, reports))
}

/// Relevant held-out items per person: positive-weight test interactions whose item is not
/// in the person's training history. `test` pairs a person with an item index, or `None`
/// for an item the training data does not know.
pub fn relevance(
    train: &TrainSet,
    test: impl IntoIterator<Item = (UserIdx, Option<ItemIdx>)>,
) -> Vec<Relevant> {
    let mut relevant = vec![Relevant::default(); train.n_users()];
    for (user, item) in test {
        let Some(slot) = relevant.get_mut(user.get()) else { continue };
        match item {
            Some(item) => {
                let is_seen =
                    train.user_items.outer_view(user.get()).is_some_and(|row| row.get(item.get()).is_some());
                if !is_seen {
                    slot.items.push(item);
                }
            }
            None => slot.n_unknown += 1,
        }
    }
    for slot in &mut relevant {
        slot.items.sort_unstable();
        slot.items.dedup();
    }
    relevant
}

/// Relevant items from held-out interactions of the same data set (positive weights only).
pub fn relevance_of(train: &TrainSet, test: &[Interaction]) -> Vec<Relevant> {
    relevance(train, test.iter().filter(|i| i.weight > 0.0).map(|i| (i.user, Some(i.item))))
}

/// Trains everything `config` enables on `dataset`: [`prepare`], then [`Prepared::fit`].
pub fn train(dataset: &Dataset, config: &TrainConfig, progress: &dyn Progress) -> Result<Trained> {
    prepare(dataset, config)?.fit(config, progress)
}

/// Everything training takes from the data set's rows: the person × item matrix, the blend
/// choice (tuned on a validation split, which fits every model once more), profiles. The
/// rows can be released before [`Prepared::fit`] fits the models on the matrix.
#[derive(Debug)]
pub struct Prepared {
    history: History,
    catalog: Vec<Item>,
    choice: BlendChoice,
    tuned_ndcg: Option<f64>,
    tuned_folds: Option<[f64; 2]>,
    validation_metrics: BTreeMap<String, Metrics>,
    profiles: Option<Profiles>,
    profiles_skipped: Option<String>,
}

/// The first part of [`train`]: everything that reads `dataset`'s rows.
pub fn prepare(dataset: &Dataset, config: &TrainConfig) -> Result<Prepared> {
    config.validate()?;
    let history = History::of(dataset);
    if history.user_items.nnz() == 0 {
        // Returns can cancel every purchase: then no pair is left to learn from.
        return Err(Error::Untrainable {
            model: "any model",
            reason: "nothing to train: every person × item weight sums to 0 or less".into(),
        });
    }
    let mut choice = BlendChoice {
        weights: config.blend.weights.clone(),
        debias: config.blend.debias.clone(),
        recency: config.weights.recency,
    };
    let mut tuned_ndcg = None;
    let mut tuned_folds = None;
    let mut validation_metrics = BTreeMap::new();
    if config.blend.tune && config.models.enabled.len() > 1 {
        let (fit_part, valid_part) = split(
            &dataset.interactions,
            SplitStrategy::Temporal { fraction: config.blend.validation_fraction },
        )?;
        let reduced = TrainSet::from_dataset(&dataset.with_interactions(fit_part));
        let (models, _) = fit_models(&reduced, config, &crate::progress::Silent)?;
        let members = members(&models);
        let relevant = relevance_of(&reduced, &valid_part);
        let tuned = tune(
            &members,
            &reduced,
            &relevant,
            &choice,
            config.blend.tune_recency,
            config.blend.k,
            config.blend.max_tuning_users,
        )?;
        choice = tuned.choice;
        let recency = choice.recency;
        // Every validation person, up to the scoring budget of large catalogs.
        let most = affordable_users(reduced.n_items()).max(tuned.n_users);
        let users = spread(evaluable_users(&reduced, &relevant), most);
        let evaluate = |model: &dyn Recommender| {
            evaluate_users(model, &reduced, &relevant, &users, config.blend.k, &recency, Candidates::All)
        };
        for (kind, model) in &members {
            validation_metrics.insert(kind.as_str().to_owned(), evaluate(*model));
        }
        let debias = Debias::new(&choice.debias, &reduced.log_popularity());
        let blend = Blend::new(&members, &choice.weights).debiased(&debias);
        validation_metrics.insert("blend".to_owned(), evaluate(&blend));
        tuned_ndcg = Some(tuned.ndcg);
        tuned_folds = Some(tuned.folds);
    }
    let (profiles, profiles_skipped) = match fit_profiles(dataset, &history.user_items, &config.profiles) {
        Ok(profiles) => (Some(profiles), None),
        Err(error @ (Error::Untrainable { .. } | Error::Numerical { .. })) => (None, Some(error.to_string())),
        Err(other) => return Err(other),
    };
    Ok(Prepared {
        history,
        catalog: dataset.catalog.clone(),
        choice,
        tuned_ndcg,
        tuned_folds,
        validation_metrics,
        profiles,
        profiles_skipped,
    })
}

impl Prepared {
    /// The second part of [`train`]: fits every enabled model on the whole matrix.
    pub fn fit(self, config: &TrainConfig, progress: &dyn Progress) -> Result<Trained> {
        let Prepared {
            history,
            catalog,
            choice,
            tuned_ndcg,
            tuned_folds,
            validation_metrics,
            profiles,
            profiles_skipped,
        } = self;
        let train_set = TrainSet::new(history, catalog);
        let BlendChoice { weights: mut blend_weights, debias: mut blend_debias, recency } = choice;
        let (models, reports) = fit_models(&train_set, config, progress)?;
        // Weights of models that were skipped do not matter; keep only trained ones.
        blend_weights.retain(|kind, _| models.iter().any(|m| m.kind() == *kind));
        blend_debias.retain(|kind, g| *g > 0.0 && blend_weights.contains_key(kind));
        if blend_weights.values().all(|&w| w == 0.0)
            && let Some(first) = models.first()
        {
            blend_weights.insert(first.kind(), 1.0);
        }
        Ok(Trained {
            models,
            reports,
            blend_weights,
            blend_debias,
            recency,
            tuned_ndcg,
            tuned_folds,
            profiles,
            profiles_skipped,
            validation_metrics,
            train_set,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_train;

    #[test]
    fn a_fit_with_non_finite_numbers_is_refused_naming_the_model() {
        // One infinite entry (what a value of 1e308 became before loaders checked the f32
        // range): ALS's factors turn NaN. The run must fail, not ship the model.
        let mut train = block_train();
        train.user_items.data_mut()[0] = f32::INFINITY;
        train.item_users = train.user_items.transpose_view().to_csr();
        let mut config = TrainConfig::default();
        config.models.enabled = vec![ModelKind::Als];
        config.als.iterations = 2;
        let Err(err) = fit_models(&train, &config, &crate::progress::Silent) else {
            panic!("a model with non-finite factors was accepted");
        };
        let err = err.to_string();
        assert!(err.starts_with("als: numerical failure: the fitted model is unusable"), "{err}");
    }
}
