//! Temporary stand-in until profiles land.
use crate::error::Result;
use crate::recommender::TrainSet;
use serde::{Deserialize, Serialize};
/// Stub.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileParams {}
impl ProfileParams {
    /// Stub.
    pub fn validate(&self) -> Result<()> {
        Ok(())
    }
}
/// Stub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profiles {}
/// Stub.
pub fn fit_profiles(_d: &datasets::dataset::Dataset, _t: &TrainSet, _p: &ProfileParams) -> Result<Profiles> {
    Ok(Profiles {})
}
