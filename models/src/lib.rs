//! Recommendation models for omnirec, their evaluation, and the model artifact.
//!
//! Every model follows one contract ([`recommender::Fit`] → [`recommender::Recommender`]):
//! popularity, item-kNN, implicit ALS, EASE and TF-IDF content similarity, combined by a
//! [`blend::Blend`]. [`pipeline::train`] fits the enabled models in parallel and tunes the
//! blend; [`metrics::evaluate`] scores any model on held-out data; [`artifact`] writes and
//! reads the one versioned file the server loads.
//!
//! ```
//! use datasets::dataset::{Dataset, WeightConfig};
//! use datasets::synthetic::{SyntheticConfig, SyntheticData};
//! use models::recommender::{Fit, Query, Recommender, TrainSet};
//!
//! let rows = datasets::synthetic::interactions(200, 100, 3_000, 1);
//! let dataset = Dataset::from_interactions(&rows, None, &WeightConfig::default())?;
//! let train = TrainSet::from_dataset(&dataset);
//! let als = models::als::AlsParams { factors: 8, iterations: 5, ..Default::default() }.fit(&train)?;
//! let history = train.history(datasets::UserIdx(0));
//! let mut scores = vec![0.0; als.n_items()];
//! als.score_into(&Query { user: Some(datasets::UserIdx(0)), history: &history }, &mut scores)?;
//! let top = models::rank::top_k(&scores, 5, |i| history.iter().all(|(h, _)| h.get() != i));
//! assert_eq!(top.len(), 5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate does no network I/O; it touches files only in [`artifact`].

pub mod als;
pub mod artifact;
pub mod blend;
pub mod config;
pub mod content;
pub mod ease;
pub mod engine;
pub mod error;
mod integrity;
pub mod item_knn;
pub mod linalg;
pub mod metrics;
pub mod pipeline;
pub mod popularity;
pub mod profile;
pub mod progress;
pub mod rank;
pub mod recommender;
pub mod rules;
#[cfg(test)]
mod testing;

pub use error::{Error, Result};
