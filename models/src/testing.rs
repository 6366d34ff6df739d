//! Shared fixtures for unit tests.

use datasets::{ItemIdx, UserIdx};
use sprs::TriMat;

use crate::rank::top_k;
use crate::recommender::{Fit, Query, Recommender, TrainSet};

/// Two taste blocks: persons 0–3 like items 0–3, persons 4–7 like items 4–7; each person
/// has every item of their block but one (person `u` lacks item `4·(u/4) + u%4`).
pub fn block_train() -> TrainSet {
    let mut triplets = TriMat::new((8, 8));
    for user in 0..8 {
        let block = user / 4;
        for item in block * 4..block * 4 + 4 {
            if item != block * 4 + user % 4 {
                triplets.add_triplet(user, item, 1.0f32);
            }
        }
    }
    let user_items = triplets.to_csr();
    let item_users = user_items.transpose_view().to_csr();
    let catalog = (0..8)
        .map(|i| datasets::schema::Item {
            item_id: format!("i{i}"),
            title: format!("i{i}"),
            ..Default::default()
        })
        .collect();
    let last_seen = vec![0; user_items.nnz()];
    TrainSet { user_items, item_users, catalog, last_seen, newest: 0 }
}

/// A model answers a bad query (a history item past its catalog, a score buffer of the
/// wrong length) with an error, never a panic.
pub fn refuses_bad_queries(model: &dyn Recommender) {
    let n = model.n_items();
    let past = [(ItemIdx(n as u32), 1.0)];
    let mut scores = vec![0.0; n];
    let err = model.score_into(&Query { user: None, history: &past }, &mut scores).unwrap_err();
    assert!(err.to_string().starts_with(&format!("item {n} is out of range")), "{}: {err}", model.name());
    let mut short = vec![0.0; n.saturating_sub(1)];
    let err = model.score_into(&Query { user: None, history: &[] }, &mut short).unwrap_err();
    assert!(err.to_string().starts_with("score buffer length"), "{}: {err}", model.name());
}

/// Every person's best unseen item is the one missing from their block, and bad queries are
/// errors.
pub fn contract(params: &impl Fit, train: &TrainSet) {
    let model = params.fit(train).unwrap();
    refuses_bad_queries(&model);
    for user in 0..8 {
        let history = train.history(UserIdx(user as u32));
        let mut scores = vec![0.0; model.n_items()];
        model
            .score_into(&Query { user: Some(UserIdx(user as u32)), history: &history }, &mut scores)
            .unwrap();
        let top = top_k(&scores, 1, |i| !history.iter().any(|(h, _)| h.get() == i));
        assert_eq!(
            top[0].item,
            ItemIdx((user / 4 * 4 + user % 4) as u32),
            "{} for person {user}",
            model.name()
        );
    }
}
