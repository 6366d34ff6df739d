//! A/B experiments: what an experiment is ([`definition`]), which variant a person gets
//! ([`assign`]), how outcomes are attributed and the report made ([`report`]), and the
//! statistics that compare arms, check assignment and plan sample sizes ([`stats`]). Pure
//! functions over plain rows: the server gathers the rows from its store.

pub mod assign;
pub mod definition;
pub mod report;
pub mod stats;

pub use definition::{Analysis, Experiment, Metric, Variant};
