//! Recommending from a loaded artifact: score with the blend, never return what the person
//! consumed, fall back to popularity for persons the model cannot personalise.
//!
//! [`Engine::answer`] is the serving path: one placement's blend weights and rules
//! ([`crate::serve::rules`]) over the served catalog ([`View`]), the fallback chain
//! personalized → popular in the person's favourite categories → popular overall, pins, and
//! an explanation per item. Who the person is and what they did comes from the caller
//! ([`Person`]: from the artifact alone, or assembled with what happened since training by
//! [`crate::serve::person`]). [`Engine::recommend`] is the plain batch path (no rules but the
//! purchase exclusion).
//!
//! Items created after training (indices from [`LiveCatalog::n_trained`]) are scored by the
//! content member, through TF-IDF rows made with the training vocabulary, and by the
//! popularity member through live popularity, each on its member's z-scale; the other members
//! do not know them yet. An item no member scored is left to the fallback stages.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use datasets::identity::find_person;
use datasets::schema::EventType;
use datasets::{ItemIdx, UserIdx};

use crate::algorithms::content::ContentModel;
use crate::artifact::Artifact;
use crate::blend::{Blend, Debias, Fused};
use crate::error::Result;
use crate::rank::ScoredItem;
use crate::recommender::ModelKind;
use crate::recommender::{Query, row_items, row_range};
use crate::serve::candidates::{self, CandidateParams, Retriever};
use crate::serve::catalog::{LiveCatalog, View};
use crate::serve::popularity::LivePopularity;
use crate::serve::rules::{
    Eligibility, Filters, Placement, PlacementConfig, PlacementKind, Request, Selection, Source,
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
    /// The person withdrew consent to personalisation.
    NoConsent,
    /// The placement is not personalised (an experiment's popular control).
    NotPersonalized,
}

impl FallbackReason {
    /// A stable snake-case label for files and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::UnknownUser => "unknown_user",
            FallbackReason::NoHistory => "no_history",
            FallbackReason::NoModels => "no_models",
            FallbackReason::NoConsent => "no_consent",
            FallbackReason::NotPersonalized => "not_personalized",
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

/// Whom a request is for, as the caller knows them.
#[derive(Debug, Clone)]
pub struct Person<'a> {
    /// The person's index in the artifact (for stored factors and profiles), if it has one.
    pub user: Option<UserIdx>,
    /// What they interacted with, weighted as training weighs events; sorted by item.
    pub history: std::borrow::Cow<'a, [(ItemIdx, f32)]>,
    /// The latest time of each `history` entry (seconds since the epoch, 0 when unknown),
    /// aligned with it, for person recency; empty when no times are known.
    pub history_times: std::borrow::Cow<'a, [i64]>,
    /// What they consumed (never recommended back, but after a repurchase window), sorted
    /// by item, with the time of the last consuming event.
    pub consumed: std::borrow::Cow<'a, [(u32, i64)]>,
    /// What the person bought themself, sorted by item, when it is less than `consumed`
    /// (which also holds other named persons' purchases, and those of a trained person
    /// whose key identifier is now someone else's): explanations say "bought" of these
    /// only. `None`: all of `consumed`.
    pub bought: Option<std::borrow::Cow<'a, [u32]>>,
    /// Whether `history` holds what the model never saw (live events, or several trained
    /// persons merged since): models then fold the history in rather than use stored state.
    pub fresh: bool,
    /// Whether the person allows personalisation; without it only popularity answers (their
    /// purchases are still never offered back).
    pub personalization: bool,
    /// What was shown to them lately on any channel (item, time), for frequency caps.
    pub shown: Vec<(ItemIdx, i64)>,
}

impl Default for Person<'_> {
    /// Nobody: no history, nothing consumed, personalisation allowed.
    fn default() -> Self {
        Person {
            user: None,
            history: Default::default(),
            history_times: Default::default(),
            consumed: Default::default(),
            bought: None,
            fresh: false,
            personalization: true,
            shown: Vec::new(),
        }
    }
}

/// Per-thread buffers for scoring, so a request allocates nothing proportional to the catalog.
#[derive(Default)]
struct Scratch {
    /// One raw score buffer per blend member.
    members: Vec<Vec<f32>>,
    total: Vec<f32>,
    /// The candidate stage's buffers.
    stage: candidates::Scratch,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// An artifact ready to answer.
pub struct Engine {
    artifact: Artifact,
    /// The artifact's own catalog, unchanged, with no placement: for batch answers.
    base: View,
    /// Global popularity: the popularity model's, or the number of persons per item.
    popularity: Vec<f32>,
    /// The artifact's blend de-bias, computed once.
    debias: Debias,
    /// The placement of [`Engine::recommend`].
    batch: Placement,
    /// The candidate stage over this artifact.
    retriever: Retriever,
    /// The model's items by `popularity`, highest first (ties to the lower item).
    popular_order: Vec<u32>,
    /// The first [`POPULAR_PREFIX`] of them, a bit per model item: the popular fill asks it
    /// of every item with live popularity, which after a day of events is most of the
    /// catalog.
    popular_prefix: Vec<u64>,
    /// How many items `popular_prefix` holds.
    n_prefix: usize,
}

impl Engine {
    /// Wraps a loaded artifact, with the candidate stage's default settings.
    pub fn new(artifact: Artifact) -> Self {
        Engine::with_candidates(artifact, CandidateParams::default())
    }

    /// Wraps a loaded artifact; large catalogs are answered through the candidate stage
    /// ([`crate::serve::candidates`]) under `candidates`, whose indexes are built here.
    pub fn with_candidates(artifact: Artifact, candidates: CandidateParams) -> Self {
        let deleted = artifact.metadata.store.as_ref().map_or(&[][..], |s| &s.deleted_items[..]);
        let catalog =
            LiveCatalog::of_model(Arc::clone(&artifact.body.items), &artifact.body.catalog).without(deleted);
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
                    counts[item as usize] += 1.0;
                }
                counts
            });
        let batch = Placement::purchases_only(artifact.body.items.len());
        let base = View { catalog, placements: BTreeMap::new() };
        let log_popularity = crate::recommender::log_popularity(&artifact.body.history);
        let debias = Debias::new(&artifact.metadata.blend_debias, &log_popularity);
        let retriever = Retriever::new(candidates, &artifact.body.models, &debias);
        // What full scoring reads beyond the artifact (ALS's half-precision copy, content's
        // postings, popularity's category slots) is built now where answers score every
        // item; behind the candidate stage full scoring is only a fallback, and its
        // structures (2 bytes per ALS factor, 6 per content posting) wait for the first one.
        for model in &artifact.body.models {
            match model {
                FittedModel::Als(als) if !retriever.has_als_index() => als.warm(),
                FittedModel::Content(content) if !retriever.active() => content.warm(),
                FittedModel::Popularity(popularity) => popularity.warm(),
                _ => {}
            }
        }
        let mut popular_order: Vec<u32> = (0..popularity.len() as u32).collect();
        popular_order.sort_unstable_by(|&a, &b| {
            popularity[b as usize].total_cmp(&popularity[a as usize]).then(a.cmp(&b))
        });
        let n_prefix = POPULAR_PREFIX.min(popular_order.len());
        let mut popular_prefix = vec![0u64; popularity.len().div_ceil(64)];
        for &item in &popular_order[..n_prefix] {
            popular_prefix[item as usize / 64] |= 1 << (item % 64);
        }
        Engine {
            artifact,
            base,
            popularity,
            debias,
            batch,
            retriever,
            popular_order,
            popular_prefix,
            n_prefix,
        }
    }

    /// The artifact's catalog, before any change.
    pub fn catalog(&self) -> &LiveCatalog {
        &self.base.catalog
    }

    /// The content model, if the artifact has one.
    pub fn content(&self) -> Option<&ContentModel> {
        self.artifact.body.models.iter().find_map(|m| match m {
            FittedModel::Content(c) => Some(&**c),
            _ => None,
        })
    }

    /// The view of `catalog` (this artifact's catalog, with changes) under `configs`; see
    /// [`View::new`]. Blend weights naming a model the artifact lacks are an error.
    pub fn view(
        &self,
        catalog: LiveCatalog,
        configs: &BTreeMap<String, PlacementConfig>,
    ) -> Result<(View, Vec<String>)> {
        for (name, config) in configs {
            if let Some(kind) = config
                .weights
                .keys()
                .find(|kind| !self.artifact.body.models.iter().any(|f| f.kind() == **kind))
            {
                return Err(crate::Error::InvalidParam {
                    name: "weights",
                    reason: format!(
                        "placement `{name}`: the model artifact has no model `{}`",
                        kind.as_str()
                    ),
                });
            }
        }
        View::new(catalog, configs)
    }

    /// Answers `request` under `placement` of `view`: eligibility, boosts, the fallback chain,
    /// pins and explanations; `live` adds the popularity of what happened since training.
    /// Fails with [`crate::Error::Rule`] when the request breaks the placement's rules (the
    /// caller's fault).
    pub fn answer(
        &self,
        view: &View,
        placement: &Placement,
        request: Request<'_>,
        person: &Person<'_>,
        live: Option<&LivePopularity>,
    ) -> Result<Answer> {
        let catalog = &view.catalog;
        let n_model = self.popularity.len();
        let n_items = catalog.len().max(n_model);
        let consumed = &person.consumed[..];
        let eligibility = Eligibility::new(placement, catalog, request, consumed, &person.shown)?;
        // Similar items come from the viewed item, not from the person (so with or without
        // their consent); a placement not personalised (an experiment's popular control)
        // answers with popular items there too.
        let similar = placement.config.kind == PlacementKind::Similar && placement.config.personalized;
        let personal = person.personalization && placement.config.personalized;
        let (history, times) = if similar {
            let viewed = request.viewed.filter(|item| item.get() < n_model);
            (viewed.map(|item| vec![(item, 1.0)]).unwrap_or_default(), Vec::new())
        } else if !personal {
            (Vec::new(), Vec::new())
        } else {
            self.session_history(&request, &person.history, &person.history_times)
        };
        let weights = if placement.config.weights.is_empty() {
            &self.artifact.metadata.blend_weights
        } else {
            &placement.config.weights
        };
        let blend = Blend::new(&members(&self.artifact.body.models), weights).debiased(&self.debias);
        let user = if similar || person.fresh || !personal { None } else { person.user };
        let recency = self.artifact.metadata.recency.factors(&times, None);
        let query = Query { user, history: &history, recency: &recency };
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            scratch.total.resize(n_items, 0.0);
            let mut selection = Selection::new(&eligibility);
            let mut personalized = !history.is_empty() && !blend.members().is_empty();
            let models = &self.artifact.body.models;
            let staged = self.retriever.active();
            // Whether every member scored the whole catalog into `scratch.members`.
            let mut dense = !staged;
            let mut fused = Vec::new();
            let mut dropped = Vec::new();
            if personalized {
                // A member that cannot score this query is left out, not the answer: the
                // other members and the fallback chain still answer.
                fused = if staged {
                    self.retriever.fuse(&blend, models, &query, &mut scratch.stage)
                } else {
                    blend.fuse(&query, &mut scratch.members, &mut scratch.total[..n_model])
                };
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
                let source = if similar { Source::Similar } else { Source::Personalized };
                if personalized && staged {
                    let mut scored = std::mem::take(&mut scratch.stage.items);
                    if n_items > n_model {
                        let mut new_items = vec![f32::NEG_INFINITY; n_items - n_model];
                        self.score_new_items(catalog, &blend, &fused, &history, live, &mut new_items);
                        let finite = new_items.iter().enumerate().filter(|(_, s)| s.is_finite());
                        scored.extend(finite.map(|(i, &s)| ((n_model + i) as u32, s)));
                    }
                    eligibility.apply_boosts_sparse(&mut scored);
                    selection.fill_sparse(&scored, source);
                    scratch.stage.items = scored;
                    // The rules left the candidates short (a narrow filter, say): the catalog
                    // is scored in full, so the answer is what it would be without the stage.
                    dense = !selection.is_full();
                    if dense {
                        fused = blend.fuse(&query, &mut scratch.members, &mut scratch.total[..n_model]);
                    }
                }
                if personalized && dense {
                    self.score_new_items(
                        catalog,
                        &blend,
                        &fused,
                        &history,
                        live,
                        &mut scratch.total[n_model..],
                    );
                    eligibility.apply_boosts(&mut scratch.total);
                    selection.fill(&scratch.total, source);
                }
            }
            let popularity = |total: &mut Vec<f32>| {
                total[..n_model].copy_from_slice(&self.popularity);
                total[n_model..].fill(0.0);
                if let Some(live) = live {
                    live.add_to(total);
                }
            };
            if !selection.is_full() && personal {
                let favourites = self.favourite_categories(person.user, &history, catalog);
                if !favourites.is_empty() {
                    popularity(&mut scratch.total);
                    for (i, total) in scratch.total.iter_mut().enumerate() {
                        let favourite = catalog
                            .index()
                            .top_category(ItemIdx(i as u32))
                            .is_some_and(|c| favourites.contains(&c));
                        if !favourite {
                            *total = f32::NEG_INFINITY;
                        }
                    }
                    eligibility.apply_boosts(&mut scratch.total);
                    selection.fill(&scratch.total, Source::FavouriteCategories);
                }
            }
            if !selection.is_full() && !self.fill_popular(&mut selection, placement, live, n_items) {
                popularity(&mut scratch.total);
                eligibility.apply_boosts(&mut scratch.total);
                selection.fill(&scratch.total, Source::Popular);
            }
            let chosen = selection.finish();
            let contributions: Vec<Vec<(ModelKind, f32)>> = chosen
                .iter()
                .map(|(scored, _)| {
                    if !personalized {
                        return Vec::new();
                    }
                    let mut contributions: Vec<(ModelKind, f32)> = blend
                        .members()
                        .iter()
                        .zip(&fused)
                        .enumerate()
                        .map(|(m, (member, outcome))| {
                            let raw = if dense {
                                scratch.members[m].get(scored.item.get()).copied().filter(|s| s.is_finite())
                            } else {
                                self.retriever.raw(&blend, models, &scratch.stage, m, scored.item)
                            };
                            let z = match (outcome, raw) {
                                (Fused::Scored(mean, scale), Some(s)) => member.weight * (s - mean) * scale,
                                _ => 0.0,
                            };
                            (member.kind, z)
                        })
                        .collect();
                    contributions.sort_by(|a, b| b.1.total_cmp(&a.1));
                    contributions
                })
                .collect();
            let because = if personalized {
                let answered: Vec<ItemIdx> = chosen.iter().map(|(scored, _)| scored.item).collect();
                explain(&blend, &contributions, &query, &answered)
            } else {
                vec![Vec::new(); chosen.len()]
            };
            let items = chosen
                .into_iter()
                .zip(contributions)
                .zip(because)
                .map(|(((scored, source), contributions), because)| {
                    let because = because
                        .into_iter()
                        .map(|item| {
                            let bought = match &person.bought {
                                Some(own) => own.binary_search(&item.0).is_ok(),
                                None => consumed.binary_search_by_key(&item.0, |&(c, _)| c).is_ok(),
                            };
                            (item, bought)
                        })
                        .collect();
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
                (false, _) if !placement.config.personalized => Some(FallbackReason::NotPersonalized),
                (false, _) if !person.personalization && !similar => Some(FallbackReason::NoConsent),
                (false, _) if !history.is_empty() => Some(FallbackReason::NoModels),
                (false, None) => Some(FallbackReason::UnknownUser),
                (false, Some(_)) => Some(FallbackReason::NoHistory),
            };
            Ok(Answer { items, personalized, fallback, dropped })
        })
    }

    /// Blended scores of the items created after training (`total` is their part of the
    /// buffer): the content member's and the popularity member's z-scores, on the scale of
    /// each member's scores of the model's items; −∞ for an item neither scored.
    fn score_new_items(
        &self,
        catalog: &LiveCatalog,
        blend: &Blend<'_>,
        fused: &[Fused],
        history: &[(ItemIdx, f32)],
        live: Option<&LivePopularity>,
        total: &mut [f32],
    ) {
        total.fill(f32::NEG_INFINITY);
        if total.is_empty() {
            return;
        }
        let n_model = self.popularity.len();
        let mut raw = vec![0f32; total.len()];
        for (member, outcome) in blend.members().iter().zip(fused) {
            let Fused::Scored(mean, scale) = *outcome else { continue };
            let scored = match member.kind {
                ModelKind::Content => match (self.content(), catalog.new_rows()) {
                    (Some(content), rows) if rows.len() == total.len() => match content.profile(history) {
                        Ok(profile) => {
                            content.score_rows(&profile, rows, &mut raw);
                            true
                        }
                        Err(_) => false,
                    },
                    _ => false,
                },
                ModelKind::Popularity => match live {
                    Some(live) => {
                        raw.fill(0.0);
                        live.add_range(n_model, &mut raw);
                        true
                    }
                    None => false,
                },
                _ => false,
            };
            if scored {
                for (t, &s) in total.iter_mut().zip(&raw) {
                    let z = member.weight * (s - mean) * scale;
                    *t = if t.is_finite() { *t + z } else { z };
                }
            }
        }
    }

    /// The person's history with the request's cart and viewed item added, as add-to-cart and
    /// view events would weigh them, and each entry's latest time (`times` aligned with
    /// `history`, or empty); only items the models know (those created after training join
    /// after the next training). The request's items are what the person does now: they get
    /// the person's newest time, so person recency counts them among the latest.
    fn session_history(
        &self,
        request: &Request<'_>,
        history: &[(ItemIdx, f32)],
        times: &[i64],
    ) -> (Vec<(ItemIdx, f32)>, Vec<i64>) {
        // Weighed as training weighed these events: the artifact keeps the weighting.
        let weights = &self.artifact.metadata.config.weights;
        let times = if times.len() == history.len() { times } else { &[] };
        let now = times.iter().copied().max().unwrap_or(0);
        let mut merged: BTreeMap<ItemIdx, (f32, i64)> = history
            .iter()
            .enumerate()
            .map(|(i, &(item, w))| (item, (w, times.get(i).copied().unwrap_or(0))))
            .collect();
        let mut add = |item: ItemIdx, weight: f32| {
            let entry = merged.entry(item).or_default();
            entry.0 += weight;
            entry.1 = entry.1.max(now);
        };
        for &item in request.cart {
            add(item, weights.type_weight(&EventType::AddToCart));
        }
        if let Some(item) = request.viewed {
            add(item, weights.type_weight(&EventType::View));
        }
        merged
            .into_iter()
            .filter(|&(item, (w, _))| w > 0.0 && item.get() < self.popularity.len())
            .map(|(item, (w, at))| ((item, w), at))
            .unzip()
    }

    /// The person's favourite top categories: from their profile, else from `history`.
    fn favourite_categories(
        &self,
        user: Option<UserIdx>,
        history: &[(ItemIdx, f32)],
        catalog: &LiveCatalog,
    ) -> Vec<u32> {
        let profiles = self.artifact.body.profiles.as_ref();
        let from_profile: Vec<u32> = user
            .and_then(|u| profiles.and_then(|p| p.person(u)))
            .map(|p| p.category_affinity.iter().filter_map(|(c, _)| catalog.index().category(c)).collect())
            .unwrap_or_default();
        if !from_profile.is_empty() {
            return from_profile;
        }
        let mut weights: BTreeMap<u32, f32> = BTreeMap::new();
        for &(item, w) in history {
            if let Some(c) = catalog.index().top_category(item) {
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

    /// What the artifact alone knows of `user`: their training history and consumed items
    /// (nothing for `None`).
    pub fn person(&self, user: Option<UserIdx>) -> Person<'_> {
        Person {
            user,
            history: user.map(|u| self.history(u)).unwrap_or_default().into(),
            history_times: user.map_or(&[][..], |u| self.history_times(u)).into(),
            consumed: user.map_or(&[][..], |u| self.consumed(u)).into(),
            ..Person::default()
        }
    }

    /// A person's training history.
    pub fn history(&self, user: UserIdx) -> Vec<(ItemIdx, f32)> {
        row_items(&self.artifact.body.history, user)
    }

    /// The latest time of each entry of `user`'s training history, aligned with
    /// [`Engine::history`].
    pub fn history_times(&self, user: UserIdx) -> &[i64] {
        let body = &self.artifact.body;
        row_range(&body.history, user).and_then(|range| body.history_times.get(range)).unwrap_or(&[])
    }

    /// Items `user` consumed (purchased, rated; or everything, for plain interaction data),
    /// sorted by item, with the time of the last consuming event.
    pub fn consumed(&self, user: UserIdx) -> &[(u32, i64)] {
        self.artifact.body.consumed.get(user.get()).map_or(&[], Vec::as_slice)
    }

    /// How many units of `item` the artifact knows `user` holds: 0 when not consumed, 1 for
    /// most consumed items, more for one bought more often than returned.
    pub fn held(&self, user: UserIdx, item: u32) -> u32 {
        let body = &self.artifact.body;
        if self.consumed(user).binary_search_by_key(&item, |&(i, _)| i).is_err() {
            return 0;
        }
        body.held.binary_search_by_key(&(user.0, item), |&(u, i, _)| (u, i)).map_or(1, |at| body.held[at].2)
    }

    /// What the training inputs show held under the identifier `key` (`kind:value`) of a
    /// person who withheld consent to personalisation at the export: (item, last purchase
    /// time, units), sorted by item.
    pub fn withheld(&self, key: &str) -> &[(u32, i64, u32)] {
        self.artifact.body.withheld.get(key).map_or(&[], Vec::as_slice)
    }

    /// The `k` best items for `user` (or the fallback for `None`), excluding consumed items:
    /// [`Engine::answer`] under a placement whose only rule is the purchase exclusion (batch
    /// sends apply their own stock and timing rules).
    pub fn recommend(&self, user: Option<UserIdx>, k: usize) -> Result<Recommendations> {
        self.recommend_person(&self.person(user), k)
    }

    /// [`Engine::recommend`] for a person as the caller assembled them (one who withholds
    /// personalisation, say).
    pub fn recommend_person(&self, person: &Person<'_>, k: usize) -> Result<Recommendations> {
        if k == 0 {
            return Ok(Recommendations { items: Vec::new(), fallback: None });
        }
        let filters = Filters::default();
        let request = Request::new(k, 0, &filters);
        let answer = self.answer(&self.base, &self.batch, request, person, None)?;
        let items = answer.items.into_iter().map(|a| ScoredItem { item: a.item, score: a.score }).collect();
        Ok(Recommendations { items, fallback: answer.fallback })
    }
}

impl Engine {
    /// The popular fill of a catalog above [`POPULAR_PREFIX`] items without scoring it: the
    /// model's most popular items and every item with live popularity, under
    /// [`Selection::fill_bounded`]. Every other item scores its model popularity (live counts
    /// only add), at most that of the first item past the prefix, or 0 for an item newer than
    /// the model. Whether it filled the answer exactly as the full fill would; placements
    /// with boosts are left to the full fill.
    fn fill_popular(
        &self,
        selection: &mut Selection<'_>,
        placement: &Placement,
        live: Option<&LivePopularity>,
        n_items: usize,
    ) -> bool {
        let n_model = self.popularity.len();
        if n_items <= POPULAR_PREFIX || placement.boosts() {
            return false;
        }
        let prefix = &self.popular_order[..self.n_prefix];
        let in_prefix = |item: u32| {
            self.popular_prefix.get(item as usize / 64).is_some_and(|w| w & (1 << (item % 64)) != 0)
        };
        let base = |item: u32| self.popularity.get(item as usize).copied().unwrap_or(0.0);
        let mut scores: Vec<(u32, f32)> = prefix.iter().map(|&i| (i, base(i))).collect();
        if let Some(live) = live {
            live.add_counts(&mut scores);
            live.for_each_touched(|item, live_count| {
                if (item as usize) < n_items && !in_prefix(item) {
                    scores.push((item, base(item) + live_count));
                }
            });
        }
        let mut bound = self.popular_order.get(prefix.len()).map_or(f32::NEG_INFINITY, |&i| base(i));
        if n_items > n_model {
            bound = bound.max(0.0);
        }
        selection.fill_bounded(&scores, bound, Source::Popular)
    }
}

/// Most popular items the popular fill reads before it falls back to scoring the catalog.
const POPULAR_PREFIX: usize = 2_048;

/// The (up to two) history items behind each of `items`, through the model contract
/// ([`crate::recommender::Recommender::explain_many`]): each item asks the members in the
/// order of their positive contribution to it (`contributions`, aligned with `items`), and
/// the first that can explain it answers. A member explains every item that reaches it in
/// the same round in one call.
fn explain(
    blend: &Blend<'_>,
    contributions: &[Vec<(ModelKind, f32)>],
    query: &Query<'_>,
    items: &[ItemIdx],
) -> Vec<Vec<ItemIdx>> {
    let orders: Vec<Vec<ModelKind>> = contributions
        .iter()
        .map(|c| c.iter().filter(|(_, z)| *z > 0.0).map(|(kind, _)| *kind).collect())
        .collect();
    let mut because: Vec<Option<Vec<ItemIdx>>> = vec![None; items.len()];
    let rounds = orders.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        for member in blend.members() {
            let asking: Vec<usize> = (0..items.len())
                .filter(|&i| because[i].is_none() && orders[i].get(round) == Some(&member.kind))
                .collect();
            if asking.is_empty() {
                continue;
            }
            let targets: Vec<ItemIdx> = asking.iter().map(|&i| items[i]).collect();
            for (i, why) in asking.into_iter().zip(member.model.explain_many(query, &targets)) {
                if !why.is_empty() {
                    because[i] = Some(why.into_iter().take(2).map(|(item, _)| item).collect());
                }
            }
        }
    }
    because.into_iter().map(Option::unwrap_or_default).collect()
}

#[cfg(test)]
mod tests;
