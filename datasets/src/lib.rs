//! Unified omnichannel interaction data for omnirec.
//!
//! Events from every channel ([`schema::Event`]) are loaded ([`load`]), joined into persons
//! by identity resolution ([`identity`]), weighted into a person × item matrix
//! ([`dataset::Dataset`]) and split for evaluation ([`split`]). [`synthetic`] makes data
//! with known ground truth.
//!
//! ```
//! use datasets::{dataset::{Dataset, WeightConfig}, identity::IdentityRules};
//! use datasets::synthetic::{SyntheticConfig, SyntheticData};
//!
//! let data = SyntheticData::generate(SyntheticConfig { n_persons: 50, n_items: 40, ..Default::default() })?;
//! let dataset = Dataset::from_events(
//!     &data.events(),
//!     Some(data.catalog.clone()),
//!     &WeightConfig::default(),
//!     &IdentityRules::default(),
//! )?;
//! assert!(dataset.matrix().nnz() > 0);
//! # Ok::<(), datasets::Error>(())
//! ```
//!
//! This crate does no network I/O; it reads and writes only through the readers and writers
//! it is handed.

pub mod consumed;
pub mod dataset;
pub mod error;
pub mod identity;
pub mod ids;
pub mod load;
pub mod recency;
pub mod schema;
pub mod split;
pub mod synthetic;

pub use error::{Error, Result};
pub use ids::{IdMap, ItemIdx, UserIdx};
