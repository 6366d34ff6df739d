//! Recommending from a loaded artifact: find the person, score with the blend, never return
//! what they consumed, fall back to popularity for persons the artifact does not know.

use datasets::identity::find_person;
use datasets::{ItemIdx, UserIdx};

use crate::artifact::Artifact;
use crate::blend::Blend;
use crate::error::Result;
use crate::pipeline::FittedModel;
use crate::rank::{ScoredItem, top_k};
use crate::recommender::{Query, Recommender, row_items};

/// Why a non-personalised answer was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// The identifier leads to no known person.
    UnknownUser,
    /// The person is known but has no usable history.
    NoHistory,
}

impl FallbackReason {
    /// A stable snake-case label for files and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::UnknownUser => "unknown_user",
            FallbackReason::NoHistory => "no_history",
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

/// An artifact ready to answer.
pub struct Engine {
    artifact: Artifact,
}

impl Engine {
    /// Wraps a loaded artifact.
    pub fn new(artifact: Artifact) -> Self {
        Engine { artifact }
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

    /// The blend of the artifact's models with its weights.
    pub fn blend(&self) -> Result<Blend<'_>> {
        let models: Vec<&dyn Recommender> =
            self.artifact.body.models.iter().map(FittedModel::as_recommender).collect();
        Blend::new(&models, &self.artifact.metadata.blend_weights)
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

    /// The `k` best items for `user` (or the fallback for `None`), excluding consumed items.
    pub fn recommend(&self, user: Option<UserIdx>, k: usize) -> Result<Recommendations> {
        let n_items = self.artifact.body.items.len();
        let mut scores = vec![0f32; n_items];
        let (consumed, fallback) = match user {
            Some(user) => {
                let history = self.history(user);
                if history.is_empty() {
                    self.popularity_into(&mut scores)?;
                    (self.consumed(user), Some(FallbackReason::NoHistory))
                } else {
                    self.blend()?.score_into(&Query { user: Some(user), history: &history }, &mut scores)?;
                    (self.consumed(user), None)
                }
            }
            None => {
                self.popularity_into(&mut scores)?;
                (&[][..], Some(FallbackReason::UnknownUser))
            }
        };
        let items = top_k(&scores, k, |i| consumed.binary_search_by_key(&(i as u32), |&(c, _)| c).is_err());
        Ok(Recommendations { items, fallback })
    }

    /// Global popularity, or the blend of an empty history when no popularity model exists.
    fn popularity_into(&self, scores: &mut [f32]) -> Result<()> {
        let popularity = self.artifact.body.models.iter().find_map(|m| match m {
            FittedModel::Popularity(p) => Some(p),
            _ => None,
        });
        match popularity {
            Some(p) => {
                scores.copy_from_slice(p.global());
                Ok(())
            }
            None => self.blend()?.score_into(&Query { user: None, history: &[] }, scores),
        }
    }
}
