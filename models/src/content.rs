//! Temporary stand-in until the content model lands.
use crate::error::Result;
use crate::recommender::{Fit, Query, Recommender, TrainSet};
use serde::{Deserialize, Serialize};
/// Stub.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentParams {}
impl ContentParams {
    /// Stub.
    pub fn validate(&self) -> Result<()> {
        Ok(())
    }
}
/// Stub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentModel {
    n: usize,
}
impl Fit for ContentParams {
    type Model = ContentModel;
    fn fit(&self, train: &TrainSet) -> Result<ContentModel> {
        Ok(ContentModel { n: train.n_items() })
    }
}
impl Recommender for ContentModel {
    fn name(&self) -> &'static str {
        "content"
    }
    fn n_items(&self) -> usize {
        self.n
    }
    fn score_into(&self, _q: &Query<'_>, s: &mut [f32]) -> Result<()> {
        s.iter_mut().for_each(|v| *v = 0.0);
        Ok(())
    }
}
