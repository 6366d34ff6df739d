//! Answering from a loaded artifact: [`engine`] scores with the blend and runs the fallback
//! chain, on large catalogs through the [`candidates`] stage; [`catalog`] is the catalog as served (the model's, with the changes made since) and
//! [`rules`] compiles placements against it and applies their business rules (eligibility,
//! boosts, diversity, caps, pins), by stage; [`person`] joins what the model learned of a
//! person with what happened since, and [`popularity`] keeps popularity current.

pub mod candidates;
pub mod catalog;
pub mod engine;
pub mod person;
pub mod popularity;
pub mod rules;
