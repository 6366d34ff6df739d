//! Answering from a loaded artifact: [`engine`] finds the person, scores with the blend
//! and runs the fallback chain; [`rules`] compiles placements and applies their business
//! rules (eligibility, boosts, diversity, pins), by stage.

pub mod engine;
pub mod rules;
