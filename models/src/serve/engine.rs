//! Recommending from a loaded artifact: find the person, score with the blend, never return
//! what they consumed, fall back to popularity for persons the artifact does not know.
//!
//! [`Engine::answer`] is the serving path: one placement's blend weights and rules
//! ([`crate::serve::rules`]), the fallback chain personalized → popular in the person's favourite
//! categories → popular overall, pins, and an explanation per item. [`Engine::recommend`]
//! is the plain batch path (no rules but the purchase exclusion).

use std::cell::RefCell;
use std::collections::BTreeMap;

use datasets::identity::find_person;
use datasets::schema::EventType;
use datasets::{ItemIdx, UserIdx};

use crate::artifact::Artifact;
use crate::blend::{Blend, Fused};
use crate::error::Result;
use crate::rank::ScoredItem;
use crate::recommender::ModelKind;
use crate::recommender::{Query, row_items};
use crate::serve::rules::{
    CatalogIndex, Eligibility, Filters, Placement, PlacementKind, Request, Selection, Source,
};
use crate::train::{FittedModel, members};

/// Why a non-personalised answer was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// The identifier leads to no known person.
    UnknownUser,
    /// The person is known but has no usable history.
    NoHistory,
    /// The placement's blend weights leave no model to score with.
    NoModels,
}

impl FallbackReason {
    /// A stable snake-case label for files and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::UnknownUser => "unknown_user",
            FallbackReason::NoHistory => "no_history",
            FallbackReason::NoModels => "no_models",
        }
    }
}

/// A ranked answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendations {
    /// Best first.
    pub items: Vec<ScoredItem>,
    /// `None` when the blend answered for a known person; the reason otherwise.
    pub fallback: Option<FallbackReason>,
}

/// One item of an [`Answer`].
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    /// The item.
    pub item: ItemIdx,
    /// Its final score (after boosts); NaN for a pinned item the ranking did not reach.
    pub score: f32,
    /// Which stage put it there.
    pub source: Source,
    /// Each blend member's weighted z-score for the item, largest first (blend stages only).
    pub contributions: Vec<(ModelKind, f32)>,
    /// Items of the person's history (or the viewed item) that most support it, from the
    /// explanation of the member that contributed most to it and can explain it
    /// ([`crate::recommender::Recommender::explain`]), each with whether the person bought it.
    pub because: Vec<(ItemIdx, bool)>,
    /// The placement's boost factor for the item (1 when none matched).
    pub boost: f32,
}

/// The answer to one request under one placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Best first; never empty while the catalog has eligible items.
    pub items: Vec<Answered>,
    /// Whether the blend answered (for a known person, a session's items, or a viewed item).
    pub personalized: bool,
    /// Why not, when it did not.
    pub fallback: Option<FallbackReason>,
    /// Blend members left out of this answer because they failed to score (an error, or no
    /// finite score at all), with the reason: the others answered. Empty normally; the
    /// server logs and counts each.
    pub dropped: Vec<(&'static str, String)>,
}

/// Whom a request is for, as the caller knows them: their index in the artifact (for
/// stored factors and profiles; `None` for a person the model never saw), their history
/// (item, confidence weight; sorted by item) and their consumed items (sorted by item, with
/// the time of the last consuming event). Today [`Engine::person`] reads them from the
/// artifact; a live store will hand in what happened since training.
#[derive(Debug, Clone, Default)]
pub struct Person<'a> {
    /// The person's index in the artifact, if it has one.
    pub user: Option<UserIdx>,
    /// What they interacted with, weighted as training weighs events.
    pub history: std::borrow::Cow<'a, [(ItemIdx, f32)]>,
    /// What they consumed (never recommended back, but after a repurchase window).
    pub consumed: &'a [(u32, i64)],
}

/// Per-thread buffers for scoring, so a request allocates nothing proportional to the catalog.
#[derive(Default)]
struct Scratch {
    /// One raw score buffer per blend member.
    members: Vec<Vec<f32>>,
    total: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// An artifact ready to answer.
pub struct Engine {
    artifact: Artifact,
    index: CatalogIndex,
    /// Global popularity: the popularity model's, or the number of persons per item.
    popularity: Vec<f32>,
    /// The placement of [`Engine::recommend`].
    batch: Placement,
}

impl Engine {
    /// Wraps a loaded artifact.
    pub fn new(artifact: Artifact) -> Self {
        let index = CatalogIndex::new(&artifact.body.catalog);
        let popularity = artifact
            .body
            .models
            .iter()
            .find_map(|m| match m {
                FittedModel::Popularity(p) => Some(p.global().to_vec()),
                _ => None,
            })
            .unwrap_or_else(|| {
                let mut counts = vec![0f32; artifact.body.items.len()];
                for &item in artifact.body.history.indices() {
                    counts[item] += 1.0;
                }
                counts
            });
        let batch = Placement::purchases_only(artifact.body.items.len());
        Engine { artifact, index, popularity, batch }
    }

    /// Compiles a placement against this artifact's catalog; see [`Placement::compile`].
    /// Blend weights naming a model the artifact lacks are an error.
    pub fn compile(
        &self,
        name: &str,
        config: &crate::serve::rules::PlacementConfig,
    ) -> Result<(Placement, Vec<String>)> {
        if let Some(kind) =
            config.weights.keys().find(|kind| !self.artifact.body.models.iter().any(|f| f.kind() == **kind))
        {
            return Err(crate::Error::InvalidParam {
                name: "weights",
                reason: format!("placement `{name}`: the model artifact has no model `{}`", kind.as_str()),
            });
        }
        let body = &self.artifact.body;
        Placement::compile(name, config, &body.items, &body.catalog)
    }

    /// Answers `request` under `placement`: eligibility, boosts, the fallback chain, pins and
    /// explanations. Fails with [`crate::Error::Rule`] when the request breaks the
    /// placement's rules (the caller's fault).
    pub fn answer(&self, placement: &Placement, request: Request<'_>, person: &Person<'_>) -> Result<Answer> {
        let body = &self.artifact.body;
        let consumed = person.consumed;
        let eligibility = Eligibility::new(placement, &body.catalog, &self.index, request, consumed)?;
        let similar = placement.config.kind == PlacementKind::Similar;
        let history = if similar {
            request.viewed.map(|item| vec![(item, 1.0)]).unwrap_or_default()
        } else {
            self.session_history(&request, &person.history)
        };
        let weights = if placement.config.weights.is_empty() {
            &self.artifact.metadata.blend_weights
        } else {
            &placement.config.weights
        };
        let blend = Blend::new(&members(&body.models), weights);
        let query = Query { user: if similar { None } else { person.user }, history: &history };
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            scratch.total.resize(body.items.len(), 0.0);
            let mut selection = Selection::new(&eligibility);
            let mut personalized = !history.is_empty() && !blend.members().is_empty();
            let mut fused = Vec::new();
            let mut dropped = Vec::new();
            if personalized {
                // A member that cannot score this query is left out, not the answer: the
                // other members and the fallback chain still answer.
                fused = blend.fuse(&query, &mut scratch.members, &mut scratch.total);
                for (member, outcome) in blend.members().iter().zip(&fused) {
                    match outcome {
                        Fused::Scored(..) => {}
                        Fused::Failed(error) => dropped.push((member.kind.as_str(), error.to_string())),
                        Fused::NoFiniteScore => {
                            dropped.push((member.kind.as_str(), "no finite score".into()))
                        }
                    }
                }
                personalized = dropped.len() < blend.members().len();
                if personalized {
                    eligibility.apply_boosts(&mut scratch.total);
                    selection
                        .fill(&scratch.total, if similar { Source::Similar } else { Source::Personalized });
                }
            }
            if !selection.is_full() {
                let favourites = self.favourite_categories(person.user, &history);
                if !favourites.is_empty() {
                    for (i, (total, &p)) in scratch.total.iter_mut().zip(&self.popularity).enumerate() {
                        let favourite = self
                            .index
                            .top_category(ItemIdx(i as u32))
                            .is_some_and(|c| favourites.contains(&c));
                        *total = if favourite { p } else { f32::NEG_INFINITY };
                    }
                    eligibility.apply_boosts(&mut scratch.total);
                    selection.fill(&scratch.total, Source::FavouriteCategories);
                }
            }
            if !selection.is_full() {
                scratch.total.copy_from_slice(&self.popularity);
                eligibility.apply_boosts(&mut scratch.total);
                selection.fill(&scratch.total, Source::Popular);
            }
            let items = selection
                .finish()
                .into_iter()
                .map(|(scored, source)| {
                    let mut contributions: Vec<(ModelKind, f32)> = if personalized {
                        blend
                            .members()
                            .iter()
                            .zip(&scratch.members)
                            .zip(&fused)
                            .map(|((member, raw), outcome)| {
                                let z = match outcome {
                                    Fused::Scored(mean, scale) => {
                                        let s = raw.get(scored.item.get()).copied().filter(|s| s.is_finite());
                                        s.map_or(0.0, |s| member.weight * (s - mean) * scale)
                                    }
                                    _ => 0.0,
                                };
                                (member.kind, z)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    contributions.sort_by(|a, b| b.1.total_cmp(&a.1));
                    let because = if personalized {
                        explain(&blend, &contributions, &query, scored.item)
                            .into_iter()
                            .map(|item| {
                                let bought = consumed.binary_search_by_key(&item.0, |&(c, _)| c).is_ok();
                                (item, bought)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    Answered {
                        item: scored.item,
                        score: scored.score,
                        source,
                        contributions,
                        because,
                        boost: placement.boost(scored.item),
                    }
                })
                .collect();
            let fallback = match (personalized, person.user) {
                (true, _) => None,
                (false, _) if !history.is_empty() => Some(FallbackReason::NoModels),
                (false, None) => Some(FallbackReason::UnknownUser),
                (false, Some(_)) => Some(FallbackReason::NoHistory),
            };
            Ok(Answer { items, personalized, fallback, dropped })
        })
    }

    /// The person's training history with the request's cart and viewed item added, as
    /// add-to-cart and view events would weigh them.
    fn session_history(&self, request: &Request<'_>, history: &[(ItemIdx, f32)]) -> Vec<(ItemIdx, f32)> {
        // Weighed as training weighed these events: the artifact keeps the weighting.
        let weights = &self.artifact.metadata.config.weights;
        let mut merged: BTreeMap<ItemIdx, f32> = history.iter().copied().collect();
        for &item in request.cart {
            *merged.entry(item).or_default() += weights.type_weight(&EventType::AddToCart);
        }
        if let Some(item) = request.viewed {
            *merged.entry(item).or_default() += weights.type_weight(&EventType::View);
        }
        merged.into_iter().filter(|&(item, w)| w > 0.0 && item.get() < self.popularity.len()).collect()
    }

    /// The person's favourite top categories: from their profile, else from `history`.
    fn favourite_categories(&self, user: Option<UserIdx>, history: &[(ItemIdx, f32)]) -> Vec<u32> {
        let profiles = self.artifact.body.profiles.as_ref();
        let from_profile: Vec<u32> = user
            .and_then(|u| profiles.and_then(|p| p.person(u)))
            .map(|p| p.category_affinity.iter().filter_map(|(c, _)| self.index.category(c)).collect())
            .unwrap_or_default();
        if !from_profile.is_empty() {
            return from_profile;
        }
        let mut weights: BTreeMap<u32, f32> = BTreeMap::new();
        for &(item, w) in history {
            if let Some(c) = self.index.top_category(item) {
                *weights.entry(c).or_default() += w;
            }
        }
        let mut ranked: Vec<(u32, f32)> = weights.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.into_iter().take(3).map(|(c, _)| c).collect()
    }

    /// The artifact.
    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    /// The person behind a key: a canonical person key or bare user id, or `kind:value` for
    /// any identifier kind (raw emails and phones are hashed first).
    pub fn lookup(&self, key: &str) -> Option<UserIdx> {
        let body = &self.artifact.body;
        find_person(&body.users, key, |alias| body.aliases.get(alias).copied()).map(UserIdx)
    }

    /// The person behind any of `identifiers`: the most trustworthy identifier that leads to
    /// a person wins, in [`datasets::schema::IdentifierKind`] order (the shop's user id, then
    /// loyalty card, point of sale, email, phone, device, cookie), so a shared device cannot
    /// outvote a login.
    pub fn find_person(&self, identifiers: &[datasets::schema::Identifier]) -> Option<UserIdx> {
        let mut ranked: Vec<&datasets::schema::Identifier> = identifiers.iter().collect();
        ranked.sort_by_key(|i| i.kind.index());
        ranked.iter().find_map(|identifier| self.lookup(&identifier.key()))
    }

    /// What the artifact knows of `user`: their training history and consumed items (nothing
    /// for `None`).
    pub fn person(&self, user: Option<UserIdx>) -> Person<'_> {
        Person {
            user,
            history: user.map(|u| self.history(u)).unwrap_or_default().into(),
            consumed: user.map_or(&[][..], |u| self.consumed(u)),
        }
    }

    /// A person's training history.
    pub fn history(&self, user: UserIdx) -> Vec<(ItemIdx, f32)> {
        row_items(&self.artifact.body.history, user)
    }

    /// Items `user` consumed (purchased, rated; or everything, for plain interaction data),
    /// sorted by item, with the time of the last consuming event.
    pub fn consumed(&self, user: UserIdx) -> &[(u32, i64)] {
        self.artifact.body.consumed.get(user.get()).map_or(&[], Vec::as_slice)
    }

    /// The `k` best items for `user` (or the fallback for `None`), excluding consumed items:
    /// [`Engine::answer`] under a placement whose only rule is the purchase exclusion (batch
    /// sends apply their own stock and timing rules).
    pub fn recommend(&self, user: Option<UserIdx>, k: usize) -> Result<Recommendations> {
        if k == 0 {
            return Ok(Recommendations { items: Vec::new(), fallback: None });
        }
        let filters = Filters::default();
        let request = Request::new(k, 0, &filters);
        let answer = self.answer(&self.batch, request, &self.person(user))?;
        let items = answer.items.into_iter().map(|a| ScoredItem { item: a.item, score: a.score }).collect();
        Ok(Recommendations { items, fallback: answer.fallback })
    }
}

/// The (up to two) history items behind `item`, through the model contract
/// ([`crate::recommender::Recommender::explain`]): asked of the members in the order of their contribution to
/// the item, the first that can explain it answers.
fn explain(
    blend: &Blend<'_>,
    contributions: &[(ModelKind, f32)],
    query: &Query<'_>,
    item: ItemIdx,
) -> Vec<ItemIdx> {
    contributions
        .iter()
        .filter(|(_, z)| *z > 0.0)
        .filter_map(|(kind, _)| blend.members().iter().find(|m| m.kind == *kind))
        .map(|member| member.model.explain(query, item))
        .find(|why| !why.is_empty())
        .map(|why| why.into_iter().take(2).map(|(item, _)| item).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommender::Recommender;
    use crate::serve::rules::{Filters, PlacementConfig, StockRule};
    use crate::train::config::TrainConfig;
    use datasets::dataset::{Dataset, WeightConfig};
    use datasets::identity::IdentityRules;
    use datasets::synthetic::{SyntheticConfig, SyntheticData};

    fn engine() -> Engine {
        Engine::new(artifact())
    }

    fn artifact() -> Artifact {
        let synthetic = SyntheticData::generate(SyntheticConfig {
            n_persons: 300,
            n_items: 80,
            seed: 5,
            ..Default::default()
        })
        .unwrap();
        let dataset = synthetic.dataset(&WeightConfig::default(), &IdentityRules::default()).unwrap();
        let mut config = TrainConfig::default();
        config.als.factors = 8;
        config.blend.tune = false;
        let trained = crate::train::train(&dataset, &config, &crate::progress::Silent).unwrap();
        Artifact::assemble(&dataset, trained, &config, 0)
    }

    fn request<'a>(k: usize, filters: &'a Filters) -> Request<'a> {
        let now = SyntheticConfig::default().end;
        Request::new(k, now, filters)
    }

    #[test]
    fn answers_follow_the_fallback_chain_and_explain_themselves() {
        let engine = engine();
        let any_stock = PlacementConfig { in_stock: StockRule::Any, ..Default::default() };
        let (placement, _) = engine.compile("p", &any_stock).unwrap();
        let filters = Filters::default();
        let buyer = (0..engine.artifact().body.users.len() as u32)
            .map(UserIdx)
            .find(|&u| engine.consumed(u).len() >= 2)
            .unwrap();

        let answer = engine.answer(&placement, request(10, &filters), &engine.person(Some(buyer))).unwrap();
        assert!(answer.personalized && answer.fallback.is_none());
        assert_eq!(answer.items.len(), 10);
        let consumed = engine.consumed(buyer);
        assert!(answer.items.iter().all(|a| consumed.binary_search_by_key(&a.item.0, |&(c, _)| c).is_err()));
        for a in &answer.items {
            assert_eq!(a.source, Source::Personalized);
            assert!(!a.contributions.is_empty());
            assert!(a.contributions.windows(2).all(|w| w[0].1 >= w[1].1), "largest contribution first");
            // The contributions add up to the blended score (no boosts here).
            let sum: f32 = a.contributions.iter().map(|c| c.1).sum();
            assert!((sum - a.score).abs() < 1e-3 * (1.0 + a.score.abs()), "{sum} vs {}", a.score);
        }

        let unknown = engine.answer(&placement, request(10, &filters), &engine.person(None)).unwrap();
        assert_eq!((unknown.personalized, unknown.fallback), (false, Some(FallbackReason::UnknownUser)));
        assert_eq!(unknown.items.len(), 10);
        assert!(unknown.items.iter().all(|a| a.source == Source::Popular && a.contributions.is_empty()));

        // With no blend member, a known person gets popular items of their favourite
        // categories first.
        let popular_only =
            PlacementConfig { weights: [(ModelKind::Popularity, 0.0)].into(), ..any_stock.clone() };
        let (placement, _) = engine.compile("q", &popular_only).unwrap();
        let answer = engine.answer(&placement, request(5, &filters), &engine.person(Some(buyer))).unwrap();
        assert_eq!((answer.personalized, answer.fallback), (false, Some(FallbackReason::NoModels)));
        assert_eq!(answer.items[0].source, Source::FavouriteCategories);
    }

    #[test]
    fn a_member_that_fails_is_dropped_from_the_blend_not_the_answer() {
        // ALS fitted on another, 8-item catalog fails on every query of this one: it stands
        // for a model that cannot score (a failed fold-in, a corrupt state).
        let mut artifact = artifact();
        let foreign = crate::algorithms::als::AlsParams { factors: 2, iterations: 1, ..Default::default() }
            .fit_with(&crate::testing::block_train(), &crate::progress::Silent)
            .unwrap();
        for model in &mut artifact.body.models {
            if matches!(model, FittedModel::Als(_)) {
                *model = FittedModel::Als(foreign.clone());
            }
        }
        let engine = Engine::new(artifact);
        let filters = Filters::default();
        let buyer = (0..engine.artifact().body.users.len() as u32)
            .map(UserIdx)
            .find(|&u| engine.consumed(u).len() >= 2)
            .unwrap();
        let weights = |kinds: &[ModelKind]| PlacementConfig {
            in_stock: StockRule::Any,
            weights: kinds.iter().map(|&kind| (kind, 1.0)).collect(),
            ..Default::default()
        };
        let (both, _) = engine.compile("both", &weights(&[ModelKind::Als, ModelKind::ItemKnn])).unwrap();
        let answer = engine.answer(&both, request(5, &filters), &engine.person(Some(buyer))).unwrap();
        assert!(answer.personalized && answer.items.len() == 5);
        assert_eq!(answer.dropped.iter().map(|d| d.0).collect::<Vec<_>>(), ["als"]);
        assert!(answer.items.iter().all(|a| a.contributions.iter().any(|c| c == &(ModelKind::Als, 0.0))));
        // With no member left, the fallback chain answers.
        let (alone, _) = engine.compile("alone", &weights(&[ModelKind::Als])).unwrap();
        let answer = engine.answer(&alone, request(5, &filters), &engine.person(Some(buyer))).unwrap();
        assert!(!answer.personalized && answer.items.len() == 5 && answer.dropped.len() == 1);
        assert_eq!(answer.items[0].source, Source::FavouriteCategories);
    }

    #[test]
    fn a_huge_k_is_capped_by_the_catalog_before_anything_is_allocated() {
        let engine = engine();
        let n_items = engine.artifact().body.items.len();
        for user in [None, Some(UserIdx(0))] {
            let answer = engine.recommend(user, 1_000_000_000_000).unwrap();
            assert!(answer.items.len() <= n_items && !answer.items.is_empty());
        }
        let huge = PlacementConfig { max_k: 1_000_000_000_000, ..Default::default() };
        assert!(huge.validate("home").unwrap_err().to_string().contains("max_k must be between 1 and 10000"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]

        /// What serves is what evaluation measures: for every known person, the engine's
        /// batch answer is the blend's ranking (`Blend`, as `trainer evaluate` scores it) with
        /// the person's consumed items left out, item for item and score for score.
        #[test]
        fn the_engine_ranks_exactly_as_the_blend(
            seed in 0u64..1_000,
            weights in proptest::collection::vec(0.0f32..2.0, 3),
        ) {
            let rows = datasets::synthetic::interactions(40, 25, 300, seed);
            let dataset = Dataset::from_interactions(&rows, None, &WeightConfig::default()).unwrap();
            let mut config = TrainConfig::default();
            config.models.enabled =
                vec![crate::recommender::ModelKind::Popularity, crate::recommender::ModelKind::ItemKnn, crate::recommender::ModelKind::Als];
            config.als.factors = 4;
            config.als.iterations = 2;
            config.blend.tune = false;
            config.blend.weights = config.models.enabled.iter().copied().zip(weights).collect();
            let trained = crate::train::train(&dataset, &config, &crate::progress::Silent).unwrap();
            let engine = Engine::new(Artifact::assemble(&dataset, trained, &config, 0));
            let body = &engine.artifact().body;
            let models = crate::train::members(&body.models);
            let blend = crate::blend::Blend::new(&models, &engine.artifact().metadata.blend_weights);
            let mut scores = vec![0.0; body.items.len()];
            let mut compared = 0;
            for user in (0..body.users.len() as u32).map(UserIdx) {
                let history = engine.history(user);
                let answer = engine.recommend(Some(user), 5).unwrap();
                if history.is_empty() || answer.fallback.is_some() {
                    continue;
                }
                blend.score_into(&Query { user: Some(user), history: &history }, &mut scores).unwrap();
                let consumed = engine.consumed(user);
                let expected = crate::rank::top_k(&scores, 5, |i| {
                    consumed.binary_search_by_key(&(i as u32), |&(c, _)| c).is_err()
                });
                proptest::prop_assert_eq!(&answer.items, &expected, "person {}", user.0);
                compared += 1;
            }
            proptest::prop_assert!(compared >= 30, "only {} persons compared", compared);
        }
    }

    #[test]
    fn fallback_stages_respect_the_filters() {
        let engine = engine();
        let (placement, _) =
            engine.compile("p", &PlacementConfig { in_stock: StockRule::Any, ..Default::default() }).unwrap();
        let catalog = &engine.artifact().body.catalog;
        let category = catalog[0].top_category().unwrap().to_string();
        let in_category = catalog.iter().filter(|i| i.top_category() == Some(category.as_str())).count();
        let filters = Filters { categories: vec![category.clone()], ..Filters::default() };
        // More than the category holds: the answer stops short rather than leave it.
        for user in [None, Some(UserIdx(0))] {
            let answer =
                engine.answer(&placement, request(in_category + 5, &filters), &engine.person(user)).unwrap();
            assert!(answer.items.len() <= in_category && !answer.items.is_empty());
            assert!(
                answer.items.iter().all(|a| catalog[a.item.get()].top_category() == Some(category.as_str()))
            );
        }
    }
}
