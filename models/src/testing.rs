//! Shared fixtures for unit tests.

use datasets::{ItemIdx, UserIdx};
use sprs::TriMatI;

use crate::rank::top_k;
use crate::recommender::{Fit, Query, Recommender, SparseScores, TrainSet};

/// Two taste blocks: persons 0–3 like items 0–3, persons 4–7 like items 4–7; each person
/// has every item of their block but one (person `u` lacks item `4·(u/4) + u%4`).
pub fn block_train() -> TrainSet {
    let mut triplets = TriMatI::<f32, u32>::new((8, 8));
    for user in 0..8 {
        let block = user / 4;
        for item in block * 4..block * 4 + 4 {
            if item != block * 4 + user % 4 {
                triplets.add_triplet(user, item, 1.0f32);
            }
        }
    }
    let user_items = triplets.to_csr::<usize>();
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

/// The contract every model keeps, whatever it learned: a bad query (a history item past
/// its catalog, a score buffer of the wrong length) is an error, never a panic; a valid one
/// (a known person, an unknown one with a history, nobody at all) gives finite scores, the
/// same twice; an explanation names only history items, strongest first, and is empty for
/// an item past the catalog.
pub fn conforms(model: &dyn Recommender, train: &TrainSet) {
    let name = model.name();
    refuses_bad_queries(model);
    let n = model.n_items();
    assert_eq!(n, train.n_items(), "{name}: scores its training catalog");
    for user in 0..train.n_users().min(8) {
        let history = train.history(UserIdx(user as u32));
        for query in [
            Query { user: Some(UserIdx(user as u32)), history: &history, recency: &[] },
            Query { user: None, history: &history, recency: &[] },
            Query { user: None, history: &[], recency: &[] },
        ] {
            let (mut first, mut second) = (vec![0.0; n], vec![1.0; n]);
            model.score_into(&query, &mut first).unwrap();
            model.score_into(&query, &mut second).unwrap();
            assert!(first.iter().all(|s| s.is_finite()), "{name}: a non-finite score for {query:?}");
            assert_eq!(first, second, "{name}: the same query scored twice differently");
            // Sparse scoring, where the model has it, is the same scores: the touched ones
            // as `score_into` gives them, every other item exactly 0.
            let mut sparse = SparseScores::new(n + 3);
            let long = model.score_sparse(&query, &mut sparse);
            assert!(!matches!(long, Ok(true)), "{name}: a sparse buffer too long is not refused");
            sparse.clear(n);
            if model.score_sparse(&query, &mut sparse).unwrap() {
                for (i, &dense) in first.iter().enumerate() {
                    let touched = sparse.touched().contains(&(i as u32));
                    assert!(touched || dense == 0.0, "{name}: item {i} scores {dense} but was not touched");
                    assert!((sparse.get(i) - dense).abs() <= 1e-5 * (1.0 + dense.abs()), "{name}: item {i}");
                }
                sparse.clear(n);
                assert!(sparse.touched().is_empty() && (0..n).all(|i| sparse.get(i) == 0.0));
            } else {
                assert!(sparse.touched().is_empty(), "{name}: touched scores but answered not sparse");
            }
            for item in (0..n).map(|i| ItemIdx(i as u32)) {
                let why = model.explain(&query, item);
                assert!(
                    why.iter().all(|(h, _)| query.history.iter().any(|(q, _)| q == h)),
                    "{name}: explains {item:?} by an item outside the history"
                );
                assert!(why.windows(2).all(|w| w[0].1 >= w[1].1), "{name}: explanation not strongest first");
            }
            assert!(model.explain(&query, ItemIdx(n as u32)).is_empty(), "{name}: explains an unknown item");
            // Every item at once (backwards, one twice, one unknown) as one at a time.
            let mut asked: Vec<ItemIdx> = (0..n).rev().map(|i| ItemIdx(i as u32)).collect();
            asked.extend([ItemIdx(0), ItemIdx(n as u32)]);
            let many = model.explain_many(&query, &asked);
            assert_eq!(many.len(), asked.len(), "{name}: explanations for as many items as asked");
            for (&item, why) in asked.iter().zip(&many) {
                assert_eq!(why, &model.explain(&query, item), "{name}: {item:?} explained together");
            }
        }
    }
}

/// A model answers a bad query (a history item past its catalog, a score buffer of the
/// wrong length) with an error, never a panic.
pub fn refuses_bad_queries(model: &dyn Recommender) {
    let n = model.n_items();
    let past = [(ItemIdx(n as u32), 1.0)];
    let mut scores = vec![0.0; n];
    let err = model.score_into(&Query { user: None, history: &past, recency: &[] }, &mut scores).unwrap_err();
    assert!(err.to_string().starts_with(&format!("item {n} is out of range")), "{}: {err}", model.name());
    let mut short = vec![0.0; n.saturating_sub(1)];
    let err = model.score_into(&Query { user: None, history: &[], recency: &[] }, &mut short).unwrap_err();
    assert!(err.to_string().starts_with("score buffer length"), "{}: {err}", model.name());
}

/// [`conforms`], and every person's best unseen item is the one missing from their block:
/// the check a collaborative model must pass.
pub fn contract(params: &impl Fit, train: &TrainSet) {
    let model = params.fit(train).unwrap();
    conforms(&model, train);
    for user in 0..8 {
        let history = train.history(UserIdx(user as u32));
        let mut scores = vec![0.0; model.n_items()];
        model
            .score_into(
                &Query { user: Some(UserIdx(user as u32)), history: &history, recency: &[] },
                &mut scores,
            )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blend::Blend;
    use crate::recommender::ModelKind;
    use crate::train::config::TrainConfig;

    /// The contract suite on every model the pipeline can train (titled, categorised items so
    /// the content model trains too), and on their blend.
    #[test]
    fn every_model_and_the_blend_keep_the_contract() {
        let mut train = block_train();
        for (i, item) in train.catalog.iter_mut().enumerate() {
            item.title = format!("{} item {i}", if i < 4 { "running shoe" } else { "cook book" });
            item.categories = vec![if i < 4 { "shoes".into() } else { "books".into() }];
        }
        let mut config = TrainConfig::default();
        config.als.factors = 4;
        config.als.iterations = 3;
        config.content.min_df = 1;
        config.content.max_df = 1.0;
        let (models, reports) = crate::train::fit_models(&train, &config, &crate::progress::Silent).unwrap();
        assert!(reports.iter().all(|r| r.skipped.is_none()), "{reports:?}");
        let kinds: Vec<ModelKind> = models.iter().map(|m| m.kind()).collect();
        assert_eq!(kinds, ModelKind::ALL);
        for model in &models {
            conforms(model.as_recommender(), &train);
        }
        let members = crate::train::members(&models);
        conforms(&Blend::new(&members, &config.blend.weights), &train);
    }
}
