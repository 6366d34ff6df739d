//! Content-based recommendations: TF-IDF vectors of catalog text, and a person's profile as
//! the weighted sum of the vectors of what they interacted with.
//!
//! Each item becomes one document: its title words (unless the title is only the item id),
//! category tokens (`shoes>running` gives `cat_shoes` and `cat_shoes_running`), a brand token
//! (`brand_acme_co`), tag tokens (`tag_eco`) and optionally the description. linfa's
//! `TfIdfVectorizer` weights terms by `tf × (ln((1 + n) / (1 + df)) + 1)` (smooth idf, Salton &
//! Buckley 1988), and each item row is scaled to unit L2 norm. Because only the catalog is used,
//! items nobody has interacted with (new arrivals) are scored like any other.

use linfa_preprocessing::tf_idf_vectorization::{FittedTfIdfVectorizer, TfIdfMethod, TfIdfVectorizer};
use ndarray::Array1;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sprs::{CsMat, CsVecView};

use datasets::ItemIdx;
use datasets::schema::Item;

use crate::algorithms::spread::{SPREAD, spread_add};
use crate::error::{Error, Result, require};
use crate::rank::{ScoredItem, top_k};
use crate::recommender::{Fit, Query, Recommender, SparseScores, TrainSet, check_query, check_sparse};

mod common;
mod explain;
mod postings;

use common::CommonTerms;
use postings::{PostingItems, Postings};

/// How many history items [`ContentModel::explain`] returns.
const EXPLAIN_TOP: usize = 3;

/// Hyperparameters of the content model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentParams {
    /// Whether item descriptions join the documents (default `false`: titles, categories, brands
    /// and tags are cleaner signals than marketing copy).
    pub use_description: bool,
    /// A term must occur in at least this many items to be kept (default 1: every term).
    pub min_df: usize,
    /// A term occurring in more than this share of items is dropped as uninformative
    /// (default 0.9); in `(0, 1]`.
    pub max_df: f32,
}

impl Default for ContentParams {
    fn default() -> Self {
        ContentParams { use_description: false, min_df: 1, max_df: 0.9 }
    }
}

impl ContentParams {
    /// Checks that `min_df >= 1` and `max_df` lies in `(0, 1]`.
    pub fn validate(&self) -> Result<()> {
        require(self.min_df > 0, "content.min_df", "must be at least 1")?;
        require(self.max_df > 0.0 && self.max_df <= 1.0, "content.max_df", "must lie in (0, 1]")?;
        Ok(())
    }
}

/// Lowercases `text` and keeps `[a-z0-9]` runs joined by single underscores (`Acme Co.` →
/// `acme_co`).
fn sanitise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// The document of one item, or `None` when the item carries no text of its own.
fn document(item: &Item, use_description: bool) -> Option<String> {
    let mut words: Vec<String> = Vec::new();
    if item.title.trim() != item.item_id.trim() {
        words.push(item.title.clone());
    }
    if use_description && let Some(description) = &item.description {
        words.push(description.clone());
    }
    for path in &item.categories {
        let mut prefix = String::from("cat");
        for level in path.split('>').map(sanitise).filter(|level| !level.is_empty()) {
            prefix.push('_');
            prefix.push_str(&level);
            words.push(prefix.clone());
        }
    }
    words.extend(
        item.brand
            .iter()
            .map(|brand| sanitise(brand))
            .filter(|b| !b.is_empty())
            .map(|b| format!("brand_{b}")),
    );
    words.extend(
        item.tags.iter().map(|tag| sanitise(tag)).filter(|t| !t.is_empty()).map(|t| format!("tag_{t}")),
    );
    let text = words.join(" ");
    (!text.trim().is_empty()).then_some(text)
}

impl Fit for ContentParams {
    type Model = ContentModel;

    /// Builds the unit-normalised item × term TF-IDF matrix. Fails with
    /// [`Error::Untrainable`] when no item has any text or every term is filtered out.
    fn fit(&self, train: &TrainSet) -> Result<ContentModel> {
        self.validate()?;
        let untrainable = |reason: &str| Error::Untrainable { model: "content", reason: reason.into() };
        let documents: Vec<Option<String>> =
            train.catalog.par_iter().map(|item| document(item, self.use_description)).collect();
        if documents.iter().all(Option::is_none) {
            return Err(untrainable("the catalog has no titles, categories, brands or tags"));
        }
        let n_items = documents.len();
        let documents: Array1<String> = documents.into_iter().map(Option::unwrap_or_default).collect();
        let tfidf_error = |e: linfa_preprocessing::PreprocessingError| Error::Numerical {
            model: "content",
            reason: format!("tf-idf vectorizer: {e}"),
        };
        let vectorizer = TfIdfVectorizer::default().fit(&documents).map_err(tfidf_error)?;
        let mut matrix = vectorizer.transform(&documents).map_err(tfidf_error)?;
        if !matrix.is_csr() {
            matrix = matrix.to_csr();
        }
        // linfa orders its vocabulary by hash; sort it so the model is deterministic, and apply the
        // document-frequency bounds here, in exact item counts.
        let mut doc_freq = vec![0usize; vectorizer.nentries()];
        for &term in matrix.indices() {
            doc_freq[term] += 1;
        }
        let max_count = f64::from(self.max_df) * n_items as f64;
        let mut kept: Vec<usize> = (0..doc_freq.len())
            .filter(|&t| doc_freq[t] >= self.min_df && doc_freq[t] as f64 <= max_count)
            .collect();
        kept.sort_by(|&a, &b| vectorizer.vocabulary()[a].cmp(&vectorizer.vocabulary()[b]));
        if kept.is_empty() {
            return Err(untrainable("no term passes the document-frequency bounds"));
        }
        let mut new_column = vec![usize::MAX; doc_freq.len()];
        for (new, &old) in kept.iter().enumerate() {
            new_column[old] = new;
        }
        let views: Vec<CsVecView<'_, f64>> = matrix.outer_iterator().collect();
        let rows: Vec<Vec<(usize, f32)>> = views
            .par_iter()
            .map(|view| {
                let mut row: Vec<(usize, f32)> = view
                    .iter()
                    .map(|(t, &v)| (new_column[t], v as f32))
                    .filter(|&(t, v)| t != usize::MAX && v > 0.0)
                    .collect();
                row.sort_unstable_by_key(|&(t, _)| t);
                let norm = row.iter().map(|&(_, v)| v * v).sum::<f32>().sqrt();
                row.iter_mut().for_each(|(_, v)| *v /= norm);
                row
            })
            .collect();
        let mut indptr = Vec::with_capacity(n_items + 1);
        indptr.push(0);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        for row in rows {
            for (term, value) in row {
                indices.push(term);
                data.push(value);
            }
            indptr.push(indices.len());
        }
        let vocabulary = kept.iter().map(|&t| vectorizer.vocabulary()[t].clone()).collect();
        let idf =
            kept.iter().map(|&t| TfIdfMethod::Smooth.compute_idf(n_items, doc_freq[t]) as f32).collect();
        let item_terms = CsMat::try_new((n_items, kept.len()), indptr, indices, data)
            .map_err(|e| Error::Numerical { model: "content", reason: format!("item matrix: {}", e.3) })?;
        Ok(ContentModel {
            vocabulary,
            item_terms,
            idf,
            vectorizer: Vectorizer(std::sync::Mutex::new(vectorizer)),
            use_description: self.use_description,
            term_items: std::sync::OnceLock::new(),
            common: std::sync::OnceLock::new(),
        })
    }
}

/// linfa's fitted vectorizer. It caches its tokenizer in a `RefCell`, so it sits behind a
/// mutex to keep the model `Sync`; only catalog changes use it. Compared by vocabulary (it
/// has no `PartialEq` of its own).
#[derive(Debug, Serialize, Deserialize)]
struct Vectorizer(std::sync::Mutex<FittedTfIdfVectorizer>);

impl Vectorizer {
    fn get(&self) -> std::sync::MutexGuard<'_, FittedTfIdfVectorizer> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clone for Vectorizer {
    fn clone(&self) -> Self {
        Vectorizer(std::sync::Mutex::new(self.get().clone()))
    }
}

impl PartialEq for Vectorizer {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other) || *self.get().vocabulary() == *other.get().vocabulary()
    }
}

/// The L2 norm of a profile.
fn norm(profile: &[f32]) -> f32 {
    profile.iter().map(|v| v * v).sum::<f32>().sqrt()
}

/// A sparse row of TF-IDF weights over the model's vocabulary: (term, weight), sorted by term.
pub type TermRow = Vec<(u32, f32)>;

/// A fitted content model: unit-norm TF-IDF rows, one per item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentModel {
    /// The terms, sorted; column `t` of `item_terms` is `vocabulary[t]`.
    vocabulary: Vec<String>,
    /// Item × term TF-IDF (CSR), each non-empty row of unit L2 norm.
    item_terms: CsMat<f32>,
    /// Each term's inverse document frequency in the training catalog.
    idf: Vec<f32>,
    /// The fitted vectorizer (its tokenizer and vocabulary), so items that arrive after
    /// training are tokenised exactly as the catalog was ([`ContentModel::rows_for`]).
    vectorizer: Vectorizer,
    /// Whether descriptions joined the documents.
    use_description: bool,
    /// Term × item postings (the transpose), built on first use: scoring a profile touches
    /// only the postings of its terms instead of every item's row.
    #[serde(skip)]
    term_items: std::sync::OnceLock<Postings>,
    /// The common terms as bits, built by [`ContentModel::warm`] where every item is scored
    /// (`None`: no term is common enough, or the catalog is over 65,536 items).
    #[serde(skip)]
    common: std::sync::OnceLock<Option<CommonTerms>>,
}

impl ContentModel {
    /// Checks decoded or freshly fitted TF-IDF rows for a catalog of `n_items`: one row per
    /// item, one column per vocabulary term, finite weights.
    pub(crate) fn check(&self, n_items: usize) -> std::result::Result<(), String> {
        crate::artifact::integrity::csr(
            "TF-IDF rows",
            &self.item_terms,
            Some(n_items),
            self.vocabulary.len(),
        )?;
        if self.idf.len() != self.vocabulary.len() {
            return Err(format!("{} idf weights for {} terms", self.idf.len(), self.vocabulary.len()));
        }
        if u32::try_from(self.item_terms.nnz()).is_err() || u32::try_from(n_items).is_err() {
            return Err(format!(
                "{} TF-IDF weights over {n_items} items: the postings index at most {} of each",
                self.item_terms.nnz(),
                u32::MAX
            ));
        }
        crate::artifact::integrity::finite("idf weights", &self.idf)
    }

    /// The terms of the model, sorted; handy for inspecting what the model sees.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocabulary
    }

    /// Unit-norm TF-IDF rows of `items` over the model's vocabulary, weighted by the
    /// document frequencies of training: how items that arrived after training (or whose text
    /// changed) compare with the catalog. Terms training never saw count for nothing; an item
    /// with none of the model's terms gets an empty row.
    pub fn rows_for(&self, items: &[Item]) -> Result<Vec<TermRow>> {
        let vectorizer = self.vectorizer.get();
        let terms = vectorizer.vocabulary();
        items
            .iter()
            .map(|item| {
                // One document at a time: linfa weighs by the document frequencies of what it
                // transforms, which for a single document (smooth idf of 1 of 1) leaves the
                // term counts; the training catalog's idf is applied here.
                let document: Array1<String> =
                    std::iter::once(document(item, self.use_description).unwrap_or_default()).collect();
                let counts = vectorizer.transform(&document).map_err(|e| Error::Numerical {
                    model: "content",
                    reason: format!("tf-idf vectorizer: {e}"),
                })?;
                let mut row: TermRow = counts
                    .iter()
                    .filter(|&(&v, _)| v > 0.0)
                    .filter_map(|(&count, (_, t))| {
                        let column = self.vocabulary.binary_search(terms.get(t)?).ok()?;
                        Some((column as u32, count as f32 * self.idf[column]))
                    })
                    .collect();
                row.sort_unstable_by_key(|&(t, _)| t);
                let norm = row.iter().map(|&(_, v)| v * v).sum::<f32>().sqrt();
                if norm > 0.0 {
                    row.iter_mut().for_each(|(_, v)| *v /= norm);
                }
                Ok(row)
            })
            .collect()
    }

    /// The profile of a history, `Σ_h ln(1 + w_h) × row_h` over the model's items in it (the
    /// vector [`Recommender::score_into`] compares every item with).
    pub fn profile(&self, history: &[(ItemIdx, f32)]) -> Result<Vec<f32>> {
        let mut profile = vec![0.0f32; self.item_terms.cols()];
        // The history's rows lie anywhere in the matrix, a cache miss each: asked for all at once.
        let rows = history.iter().map(|&(item, _)| self.row(item)).collect::<Result<Vec<_>>>()?;
        crate::algorithms::linalg::touch(rows.iter().map(|row| row.indices()));
        crate::algorithms::linalg::touch(rows.iter().map(|row| row.data()));
        for (row, &(_, weight)) in rows.into_iter().zip(history) {
            if weight.is_finite() && weight > 0.0 {
                let scale = weight.ln_1p();
                row.iter().for_each(|(term, &value)| profile[term] += scale * value);
            }
        }
        Ok(profile)
    }

    /// The profile of the query's history, recency applied ([`ContentModel::profile`]).
    pub fn query_profile(&self, query: &Query<'_>) -> Result<Vec<f32>> {
        if query.recency.is_empty() {
            self.profile(query.history)
        } else {
            self.profile(&query.weighted().collect::<Vec<_>>())
        }
    }

    /// The item × term TF-IDF rows (CSR, unit norm).
    pub(crate) fn item_terms(&self) -> &CsMat<f32> {
        &self.item_terms
    }

    /// `scores[j] = rows[j] · profile / ‖profile‖`: the score [`Recommender::score_into`]
    /// would give an item with row `rows[j]`.
    pub fn score_rows(&self, profile: &[f32], rows: &[TermRow], scores: &mut [f32]) {
        let norm = norm(profile);
        for (score, row) in scores.iter_mut().zip(rows) {
            *score = if norm == 0.0 {
                0.0
            } else {
                row.iter().map(|&(t, v)| v * profile.get(t as usize).copied().unwrap_or(0.0)).sum::<f32>()
                    / norm
            };
        }
    }

    fn row(&self, item: ItemIdx) -> Result<CsVecView<'_, f32>> {
        self.item_terms.outer_view(item.get()).ok_or(Error::OutOfRange {
            what: "item",
            index: item.get(),
            len: self.n_items(),
        })
    }

    /// `scores[j] = row_j · profile / ‖profile‖`, through the postings of the profile's terms
    /// (the common ones through their bits, once [`ContentModel::warm`] built them); all zeros
    /// when the profile is empty.
    fn cosine_into(&self, profile: &[f32], scores: &mut [f32]) {
        let postings = self.postings();
        let common = self.common.get().and_then(Option::as_ref).filter(|c| c.usable(scores.len()));
        if let PostingItems::Short(items) = &postings.items {
            let posted = |term: usize| common.is_none_or(|c| !c.holds(term));
            let spread = |spread: &mut [f32; SPREAD]| {
                let mut end = 0;
                self.for_each_term(profile, |term, range, weight| {
                    if !posted(term) {
                        return;
                    }
                    let (items, values) = (&items[range.clone()], &postings.values[range]);
                    for (&item, &value) in items.iter().zip(values) {
                        spread[usize::from(item)] += value * weight;
                    }
                    end = end.max(items.last().map_or(0, |&i| usize::from(i) + 1));
                });
                end
            };
            if spread_add(scores, spread) {
                let norm = norm(profile);
                match common {
                    Some(common) if norm != 0.0 => {
                        if common.add(profile, norm, scores) {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        }
        scores.fill(0.0);
        self.for_each_posting(profile, |item, value| {
            if let Some(score) = scores.get_mut(item) {
                *score += value;
            }
        });
    }

    /// Builds what scoring every item reads (the postings, the common terms' bits), so that
    /// the first answer does not pay for them. Until then (as where a candidate stage scores
    /// only some items), every term goes through the postings.
    pub fn warm(&self) {
        self.postings();
        self.common.get_or_init(|| CommonTerms::of(&self.item_terms, &self.idf));
    }

    /// The term × item postings, built on first use.
    fn postings(&self) -> &Postings {
        self.term_items.get_or_init(|| Postings::of(&self.item_terms))
    }

    /// Calls `each(t, range, profile[t] / ‖profile‖)` for every term `t` of the profile,
    /// with where its postings are: nothing for an empty profile.
    fn for_each_term(&self, profile: &[f32], mut each: impl FnMut(usize, std::ops::Range<usize>, f32)) {
        let norm = norm(profile);
        if norm == 0.0 {
            return;
        }
        let postings = self.postings();
        for (term, &weight) in profile.iter().enumerate().filter(|(_, w)| **w != 0.0) {
            each(term, postings.range(term), weight / norm);
        }
    }

    /// Calls `add(item, row_item[t] · profile[t] / ‖profile‖)` for every posting of every
    /// term of the profile: the terms of the cosine, nothing for an empty profile.
    fn for_each_posting(&self, profile: &[f32], mut add: impl FnMut(usize, f32)) {
        let postings = self.postings();
        self.for_each_term(profile, |_, range, weight| {
            let values = &postings.values[range.clone()];
            match &postings.items {
                PostingItems::Short(items) => {
                    for (&item, &value) in items[range].iter().zip(values) {
                        add(usize::from(item), value * weight);
                    }
                }
                PostingItems::Long(items) => {
                    for (&item, &value) in items[range].iter().zip(values) {
                        add(item as usize, value * weight);
                    }
                }
            }
        });
    }

    /// The `k` items most similar to `item` by cosine of their TF-IDF rows, best first; the item
    /// itself and items with nothing in common are left out. Empty when `item` is out of range,
    /// like [`crate::algorithms::item_knn::ItemKnnModel::similar_items`].
    pub fn similar_items(&self, item: ItemIdx, k: usize) -> Vec<ScoredItem> {
        let Ok(row) = self.row(item) else { return Vec::new() };
        let mut profile = vec![0.0f32; self.item_terms.cols()];
        for (term, &value) in row.iter() {
            profile[term] = value;
        }
        let mut scores = vec![0.0f32; self.n_items()];
        self.cosine_into(&profile, &mut scores);
        top_k(&scores, k, |j| j != item.get() && scores[j] > 0.0)
    }
}

impl Recommender for ContentModel {
    fn name(&self) -> &'static str {
        "content"
    }

    fn n_items(&self) -> usize {
        self.item_terms.rows()
    }

    /// Cosine between each item row and the profile `Σ_h ln(1 + w_h) × row_h` over the history;
    /// all zeros for an empty history. Fails on an out-of-range history item or a score buffer
    /// of the wrong length.
    fn score_into(&self, query: &Query<'_>, scores: &mut [f32]) -> Result<()> {
        check_query(self.n_items(), query, scores)?;
        let profile = self.query_profile(query)?;
        self.cosine_into(&profile, scores);
        Ok(())
    }

    fn score_sparse(&self, query: &Query<'_>, out: &mut SparseScores) -> Result<bool> {
        check_sparse(self.n_items(), query, out)?;
        let profile = self.query_profile(query)?;
        self.for_each_posting(&profile, |item, value| out.add(item, value));
        Ok(true)
    }

    /// The (up to three) history items whose rows have the highest cosine with `item`.
    fn explain(&self, query: &Query<'_>, item: ItemIdx) -> Vec<(ItemIdx, f32)> {
        self.explain_many(query, &[item]).pop().unwrap_or_default()
    }

    /// [`Recommender::explain`] of every item at once. The answered items go through the
    /// history 16 at a time: each term of theirs gets a row of their weights side by
    /// side, and each history row, read once, adds its products to all of them as one short
    /// vector. A history row's products are added in its term order from zero, the terms no
    /// answered item has left out (they would add zeros to a sum of non-negative weights),
    /// so every sum is that of a sparse dot product, bit for bit.
    fn explain_many(&self, query: &Query<'_>, items: &[ItemIdx]) -> Vec<Vec<(ItemIdx, f32)>> {
        self.explain_items(query, items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, title: &str, category: &str, brand: &str) -> Item {
        Item {
            item_id: id.into(),
            title: title.into(),
            categories: if category.is_empty() { vec![] } else { vec![category.into()] },
            brand: (!brand.is_empty()).then(|| brand.into()),
            ..Item::default()
        }
    }

    fn train(catalog: Vec<Item>) -> TrainSet {
        let n = catalog.len();
        let user_items = datasets::dataset::Matrix::zero((1, n));
        TrainSet {
            item_users: user_items.transpose_view().to_csr(),
            user_items,
            catalog,
            last_seen: vec![],
            newest: 0,
        }
    }

    fn shop() -> Vec<Item> {
        vec![
            item("s1", "Swift running shoe", "shoes>running", "Acme Co"),
            item("s2", "Trail running shoe", "shoes>running", "Bolt"),
            item("s3", "Road racer", "shoes>running", "Bolt"),
            item("p1", "Cast iron pan", "home>kitchen", "Acme Co"),
            item("p2", "Nonstick pan", "home>kitchen", "Chef"),
            item("k1", "Kettle", "home>kitchen", "Chef"),
        ]
    }

    #[test]
    fn tokens_are_sanitised() {
        let doc = document(&item("x", "Red Shoe", "Shoes > Running!", "Acme Co."), false).unwrap();
        assert_eq!(doc, "Red Shoe cat_shoes cat_shoes_running brand_acme_co");
        // A stub entry titled by its id has no text.
        assert_eq!(document(&item("x", "x", "", ""), false), None);
    }

    #[test]
    fn running_shoe_buyer_gets_the_new_running_shoe_first() {
        let model = ContentParams::default().fit(&train(shop())).unwrap();
        crate::testing::refuses_bad_queries(&model);
        let history = [(ItemIdx(0), 5.0), (ItemIdx(1), 1.0)];
        let query = Query { user: None, history: &history, recency: &[] };
        let mut scores = vec![0.0; 6];
        model.score_into(&query, &mut scores).unwrap();
        let ranked = top_k(&scores, 4, |j| j > 1);
        // s3 (nobody touched it) shares both shoe category tokens with s1 and s2, and its brand with s2.
        assert_eq!(ranked[0].item, ItemIdx(2));
        assert!(scores[2] > scores[4] && scores[2] > scores[5]);
        // p1 shares only the brand Acme Co with s1, so it beats the other kitchen items.
        assert!(scores[3] > 0.0 && scores[4] == 0.0);
        let why = model.explain(&query, ItemIdx(2));
        assert_eq!(why.iter().map(|w| w.0).collect::<Vec<_>>(), [ItemIdx(1), ItemIdx(0)]);
        let empty = Query { user: None, history: &[], recency: &[] };
        model.score_into(&empty, &mut scores).unwrap();
        assert!(scores.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn cosine_matches_hand_computed_tf_idf() {
        let catalog =
            vec![item("a", "alpha beta", "", ""), item("b", "alpha", "", ""), item("c", "gamma", "", "")];
        let params = ContentParams { max_df: 1.0, ..ContentParams::default() };
        let model = params.fit(&train(catalog)).unwrap();
        assert_eq!(model.vocabulary(), ["alpha", "beta", "gamma"]);
        // n = 3; idf(alpha) = ln(4/3) + 1, idf(beta) = ln(4/2) + 1; b is the unit vector on alpha,
        // so cos(a, b) = idf(alpha) / sqrt(idf(alpha)² + idf(beta)²) = 1.28768 / 2.12716.
        let (alpha, beta) = ((4.0f32 / 3.0).ln() + 1.0, 2.0f32.ln() + 1.0);
        let expected = alpha / (alpha * alpha + beta * beta).sqrt();
        // An item written after training is vectorised as the catalog was: one like `a`
        // scores what `a` scores, a word training never saw counts for nothing.
        let late = item("d", "alpha beta delta", "", "");
        let rows = model.rows_for(&[late]).unwrap();
        let profile = model.profile(&[(ItemIdx(1), 1.0)]).unwrap();
        let (mut late_score, mut all) = ([0.0f32], vec![0.0f32; 3]);
        model.score_rows(&profile, &rows, &mut late_score);
        model
            .score_into(&Query { user: None, history: &[(ItemIdx(1), 1.0)], recency: &[] }, &mut all)
            .unwrap();
        assert!((late_score[0] - all[0]).abs() < 1e-6, "{late_score:?} vs {all:?}");
        let similar = model.similar_items(ItemIdx(1), 5);
        assert_eq!(similar.len(), 1);
        assert_eq!(similar[0].item, ItemIdx(0));
        assert!((similar[0].score - expected).abs() < 1e-6 && (expected - 0.60535).abs() < 1e-4);
        assert!(model.similar_items(ItemIdx(3), 5).is_empty());
        let mut scores = vec![0.0; 3];
        let unknown = Query { user: None, history: &[(ItemIdx(3), 1.0)], recency: &[] };
        assert!(matches!(model.score_into(&unknown, &mut scores), Err(Error::OutOfRange { index: 3, .. })));
    }

    #[test]
    fn explaining_many_items_at_once_matches_one_at_a_time() {
        let mut catalog = shop();
        catalog.extend([
            item("s4", "Swift trail racer", "shoes>trail", "Bolt"),
            item("p3", "Swift pan", "home>kitchen", "Acme Co"),
            item("x1", "Umbrella", "", ""),
        ]);
        let model = ContentParams::default().fit(&train(catalog)).unwrap();
        let history =
            [(ItemIdx(0), 2.0), (ItemIdx(4), 1.0), (ItemIdx(6), 1.0), (ItemIdx(3), 1.0), (ItemIdx(8), 1.0)];
        let query = Query { user: None, history: &history, recency: &[] };
        // Every item (history items among them), one twice, one out of range, and then every
        // item again: more than one walk's worth of lanes.
        let asked: Vec<ItemIdx> = (0..9).chain([2, 42]).chain(0..9).map(ItemIdx).collect();
        assert!(asked.len() > explain::LANES);
        let many = model.explain_many(&query, &asked);
        assert_eq!(many.len(), asked.len());
        for (item, got) in asked.iter().zip(&many) {
            // The reference: one sparse dot product per history item, bit for bit the same.
            let mut want: Vec<(ItemIdx, f32)> = match model.row(*item) {
                Err(_) => Vec::new(),
                Ok(target) => history
                    .iter()
                    .filter(|&&(seen, _)| seen != *item)
                    .map(|&(seen, _)| (seen, model.row(seen).unwrap().dot(&target)))
                    .filter(|&(_, similarity)| similarity > 0.0)
                    .collect(),
            };
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(EXPLAIN_TOP);
            assert_eq!(got, &want, "item {item:?}");
            assert_eq!(&model.explain(&query, *item), got);
        }
        assert!(many.iter().filter(|why| !why.is_empty()).count() >= 5);
    }

    #[test]
    fn postings_are_the_transpose_and_score_as_the_rows_do() {
        let mut catalog = shop();
        catalog
            .extend([item("s4", "Swift trail racer", "shoes>trail", "Bolt"), item("x1", "Umbrella", "", "")]);
        let model = ContentParams::default().fit(&train(catalog)).unwrap();
        let postings = model.postings();
        let transpose: CsMat<f32> = model.item_terms.transpose_view().to_csr();
        assert_eq!(postings.starts.len(), transpose.rows() + 1);
        for term in 0..transpose.rows() {
            let (items, values) = postings.term(term);
            let want = transpose.outer_view(term).unwrap();
            assert_eq!(items.iter().map(|&i| i as usize).collect::<Vec<_>>(), want.indices(), "term {term}");
            assert_eq!(values, want.data(), "term {term}");
        }
        assert_eq!(postings.term(transpose.rows()), (Vec::new(), &[][..]));
        // Scoring through the postings gives each item its row's dot product with the profile.
        let history = [(ItemIdx(0), 2.0), (ItemIdx(4), 1.0), (ItemIdx(6), 1.0)];
        let query = Query { user: None, history: &history, recency: &[] };
        let mut scores = vec![0.0; 8];
        model.score_into(&query, &mut scores).unwrap();
        let profile = model.query_profile(&query).unwrap();
        let rows: Vec<TermRow> = (0..8)
            .map(|i| model.row(ItemIdx(i)).unwrap().iter().map(|(t, &v)| (t as u32, v)).collect())
            .collect();
        let mut by_rows = vec![0.0; 8];
        model.score_rows(&profile, &rows, &mut by_rows);
        for (a, b) in scores.iter().zip(&by_rows) {
            assert!((a - b).abs() < 1e-6, "{scores:?} vs {by_rows:?}");
        }
        assert!(scores.iter().filter(|&&s| s > 0.0).count() >= 4);
    }

    /// A catalog of `n` items whose titles draw on a few words, so that many terms are
    /// common, and on model numbers, rare; every seventh title repeats a word (a weight the common terms' bits cannot
    /// hold), and every 23rd item has no text.
    fn wordy_catalog(n: usize) -> Vec<Item> {
        const WORDS: [&str; 12] =
            ["red", "blue", "shoe", "pan", "light", "trail", "pro", "mini", "eco", "max", "soft", "kit"];
        (0..n)
            .map(|i| {
                let id = format!("i{i}");
                if i % 23 == 5 {
                    return item(&id, &id, "", "");
                }
                let mut title: Vec<&str> =
                    (0..1 + i % 4).map(|w| WORDS[(i * 7 + w * 5 + i / 13) % 12]).collect();
                if i % 7 == 0 {
                    title.push(title[0]);
                }
                title.push(["alpha", "beta", "gamma", "delta", "epsilon"][i % 5]);
                // A model number eight items share: a rare term.
                let model = format!("m{}", i % 50);
                title.push(&model);
                let category = ["shoes>running", "home>kitchen", "garden", "books>cooking"][i % 4];
                item(&id, &title.join(" "), category, ["Acme Co", "Bolt", "Chef"][i % 3])
            })
            .collect()
    }

    #[test]
    fn common_terms_score_as_the_postings_do() {
        let model = ContentParams::default().fit(&train(wordy_catalog(400))).unwrap();
        let cold = model.clone();
        model.warm();
        let common = model.common.get().and_then(Option::as_ref).expect("common terms");
        let held = (0..model.vocabulary.len()).filter(|&t| common.holds(t)).count();
        assert!(held >= 10 && held < model.vocabulary.len(), "{held} of {} terms", model.vocabulary.len());
        assert!(common.left_out() > 0, "the repeated words stay postings");
        if !common.usable(400) {
            eprintln!("no AVX-512 here: the common terms go through their postings");
        }
        let n = model.n_items();
        for seed in 0..40usize {
            // Short and long histories, one with a textless item, one of textless items only.
            let history: Vec<(ItemIdx, f32)> = match seed {
                0 => vec![(ItemIdx(5), 1.0)],
                _ => (0..1 + seed * 3)
                    .map(|h| (ItemIdx(((seed * 37 + h * 101) % n) as u32), 1.0 + (h % 3) as f32))
                    .collect(),
            };
            let query = Query { user: None, history: &history, recency: &[] };
            let (mut warm, mut reference) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            model.score_into(&query, &mut warm).unwrap();
            cold.score_into(&query, &mut reference).unwrap();
            for (item, (a, b)) in warm.iter().zip(&reference).enumerate() {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "seed {seed} item {item}: {a} vs {b}");
            }
            if seed == 0 {
                assert!(warm.iter().all(|&s| s == 0.0), "a textless history scores nothing");
            } else {
                assert!(warm.iter().filter(|&&s| s > 0.0).count() > n / 4, "seed {seed}");
            }
        }
        crate::testing::refuses_bad_queries(&model);
    }

    #[test]
    fn bad_params_and_textless_catalogs_are_refused() {
        let zero = ContentParams { min_df: 0, ..ContentParams::default() };
        assert!(matches!(zero.validate(), Err(Error::InvalidParam { name: "content.min_df", .. })));
        let over = ContentParams { max_df: 1.5, ..ContentParams::default() };
        assert!(matches!(over.fit(&train(shop())), Err(Error::InvalidParam { name: "content.max_df", .. })));
        let stubs = vec![item("i1", "i1", "", ""), item("i2", "i2", "", "")];
        let err = ContentParams::default().fit(&train(stubs)).unwrap_err();
        assert!(matches!(err, Error::Untrainable { model: "content", .. }), "{err}");
    }
}
