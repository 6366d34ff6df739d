//! The text form of an experiment's report (`GET /v1/experiments/{name}/report`), as
//! `server report` prints it.

/// A report as text: the sample-ratio status, the variants, the comparisons, the notes.
pub fn render(r: &serde_json::Value) -> String {
    use std::fmt::Write;
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let percent = |v: &serde_json::Value| format!("{:.2}%", number(v) * 100.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "experiment {} ({}), {}",
        r["experiment"].as_str().unwrap_or("?"),
        r["state"].as_str().unwrap_or("?"),
        r["generated_at"].as_str().unwrap_or("")
    );
    let srm = if r["srm_warning"] == true {
        "SAMPLE-RATIO MISMATCH: do not trust the comparisons"
    } else {
        "sample ratio ok"
    };
    let _ = writeln!(out, "{srm} (p = {:.4})\n", number(&r["srm"]["p_value"]));
    let _ = writeln!(
        out,
        "{:<14} {:>8} {:>9} {:>8} {:>11} {:>12} {:>10} {:>13}",
        "variant", "persons", "exposures", "CTR", "conversion", "revenue/pers", "revenue", "cross-channel"
    );
    for v in r["variants"].as_array().into_iter().flatten() {
        let name = format!(
            "{}{}",
            v["name"].as_str().unwrap_or("?"),
            if v["control"] == true { " (c)" } else { "" }
        );
        let _ = writeln!(
            out,
            "{name:<14} {:>8} {:>9} {:>8} {:>11} {:>12.2} {:>10.2} {:>13}",
            v["persons"].to_string(),
            v["exposures"].to_string(),
            percent(&v["click_through_rate"]),
            percent(&v["conversion_rate"]),
            number(&v["revenue_per_person"]),
            number(&v["revenue"]),
            v["cross_channel_purchases"].to_string()
        );
    }
    let _ = writeln!(
        out,
        "\n{:<10} {:<20} {:>9} {:>22} {:>9} {:>9}",
        "variant", "metric", "lift", "interval", "p", "p (Holm)"
    );
    for c in r["comparisons"].as_array().into_iter().flatten() {
        let rel = &c["relative"];
        let interval = format!("{} … {}", percent(&rel["lower"]), percent(&rel["upper"]));
        let metric = format!(
            "{}{}",
            c["metric"].as_str().unwrap_or("?"),
            if c["primary"] == true { " *" } else { "" }
        );
        let _ = writeln!(
            out,
            "{:<10} {metric:<20} {:>9} {interval:>22} {:>9.4} {:>9.4}{}",
            c["variant"].as_str().unwrap_or("?"),
            percent(&rel["effect"]),
            number(&rel["p_value"]),
            number(&c["p_adjusted"]),
            if c["significant"] == true { "  significant" } else { "" }
        );
    }
    for note in r["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "note: {}", note.as_str().unwrap_or(""));
    }
    out
}
