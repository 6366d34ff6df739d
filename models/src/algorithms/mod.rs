//! The recommenders, each behind the [`crate::recommender`] contract (`Fit` → `Recommender`),
//! and the SIMD kernels they share.
//!
//! | model | learns | answers cold persons by |
//! |---|---|---|
//! | [`popularity`] | how many persons hold each item, globally and per category | itself |
//! | [`item_knn`] | cosine neighbours between items' holders | their history |
//! | [`als`] | implicit ALS factors (Hu, Koren, Volinsky 2008) | folding in their history |
//! | [`ease`] | a closed-form item-item matrix (Steck 2019) | their history |
//! | [`content`] | TF-IDF vectors of titles, categories, brands, tags | their history |

pub mod als;
pub mod content;
pub mod ease;
pub mod half_scan;
pub mod item_knn;
pub mod linalg;
pub mod popularity;
pub mod spread;
