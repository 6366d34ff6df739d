//! Plain-text tables for people.

use models::metrics::Metrics;

/// A metrics table: one row per model, columns at cut-off `k`.
pub fn metrics(rows: &[(String, Metrics, Option<f64>)], k: usize) -> String {
    let mut out = format!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "model",
        format!("prec@{k}"),
        format!("recall@{k}"),
        format!("ndcg@{k}"),
        format!("map@{k}"),
        "hit_rate",
        "mrr",
        "coverage",
        "persons",
        "fit_s"
    );
    for (name, m, seconds) in rows {
        out.push_str(&format!(
            "{:<12} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8} {:>8}\n",
            name,
            m.precision,
            m.recall,
            m.ndcg,
            m.map,
            m.hit_rate,
            m.mrr,
            m.coverage,
            m.n_users,
            seconds.map_or("-".to_owned(), |s| format!("{s:.2}")),
        ));
    }
    out
}
