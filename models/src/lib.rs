//! Recommendation models for omnirec, their evaluation, and the model artifact.
//!
//! One folder or file per concept:
//!
//! - [`recommender`]: the contract every model follows ([`recommender::Fit`] →
//!   [`recommender::Recommender`]), [`recommender::ModelKind`], the training input.
//! - [`algorithms`]: popularity, item-kNN, implicit ALS, EASE, TF-IDF content.
//! - [`blend`]: [`blend::Blend`], the one fusion of members' z-scores that serving,
//!   evaluation and [`blend::tune`] share.
//! - [`train`]: [`train::train`] fits the enabled models in parallel, tunes the blend and
//!   derives [`profile`]s; [`train::config`] is the TOML configuration.
//! - [`metrics`]: [`metrics::evaluate`] scores any model on held-out data.
//! - [`artifact`]: writes and reads (and checks) the one versioned file the server loads.
//! - [`serve`]: the [`serve::engine`] that answers from an artifact under placements whose
//!   [`serve::rules`] are applied by stage.
//! - [`rank`]: top-k and standardisation; [`progress`]: progress reporting.
//! - [`experiment`]: A/B experiments and their statistics ([`experiment::stats`]), as pure
//!   functions.
//!
//! ```
//! use datasets::dataset::{Dataset, WeightConfig};
//! use datasets::synthetic::{SyntheticConfig, SyntheticData};
//! use models::recommender::{Fit, Query, Recommender, TrainSet};
//!
//! let rows = datasets::synthetic::interactions(200, 100, 3_000, 1);
//! let dataset = Dataset::from_interactions(&rows, None, &WeightConfig::default())?;
//! let train = TrainSet::from_dataset(&dataset);
//! let als = models::algorithms::als::AlsParams { factors: 8, iterations: 5, ..Default::default() }.fit(&train)?;
//! let history = train.history(datasets::UserIdx(0));
//! let mut scores = vec![0.0; als.n_items()];
//! als.score_into(&Query { user: Some(datasets::UserIdx(0)), history: &history, recency: &[] }, &mut scores)?;
//! let top = models::rank::top_k(&scores, 5, |i| history.iter().all(|(h, _)| h.get() != i));
//! assert_eq!(top.len(), 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate does no network I/O; it touches files only in [`artifact`].

pub mod algorithms;
pub mod artifact;
pub mod blend;
pub mod error;
pub mod experiment;
pub mod metrics;
pub mod profile;
pub mod progress;
pub mod rank;
pub mod recommender;
pub mod serve;
#[cfg(test)]
mod testing;
pub mod train;

pub use error::{Error, Result};
