//! Plain-text tables for people.

use models::metrics::Metrics;

/// A metrics table: one row per model, columns at cut-off `k`, then the validation NDCG
/// (the split the blend was tuned on) beside the test NDCG when tuning ran.
pub fn metrics(rows: &[(String, Metrics, Option<Metrics>, Option<f64>)], k: usize) -> String {
    let mut out = format!(
        "{:<12} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}\n",
        "model",
        format!("prec@{k}"),
        format!("recall@{k}"),
        format!("ndcg@{k}"),
        format!("map@{k}"),
        "hit_rate",
        "mrr",
        "coverage",
        "novelty",
        "diversity",
        "val_ndcg",
        "persons",
        "fit_s"
    );
    for (name, m, validation, seconds) in rows {
        out.push_str(&format!(
            "{:<12} {:>8.4} {:>9.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>9.2} {:>9} {:>8} {:>8}\n",
            name,
            m.precision,
            m.recall,
            m.ndcg,
            m.map,
            m.hit_rate,
            m.mrr,
            m.coverage,
            m.novelty,
            m.diversity,
            validation.map_or("-".to_owned(), |v| format!("{:.4}", v.ndcg)),
            m.n_users,
            seconds.map_or("-".to_owned(), |s| format!("{s:.2}")),
        ));
    }
    out
}
