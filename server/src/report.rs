//! The text form of an experiment's report (`GET /v1/experiments/{name}/report`), as
//! `server report` prints it.

/// A report as text: the sample-ratio status, the variants, the comparisons, the notes.
pub fn render(r: &serde_json::Value) -> String {
    use std::fmt::Write;
    // A figure the report leaves out (no exposures yet, no comparison) is shown as `-`.
    let percent = |v: &serde_json::Value| match v.as_f64() {
        Some(x) => format!("{:.2}%", x * 100.0),
        None => "-".to_string(),
    };
    let fixed = |v: &serde_json::Value, digits: usize| match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "-".to_string(),
    };
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
    let _ = writeln!(out, "{srm} (p = {})\n", fixed(&r["srm"]["p_value"], 4));
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
            "{name:<14} {:>8} {:>9} {:>8} {:>11} {:>12} {:>10} {:>13}",
            v["persons"].to_string(),
            v["exposures"].to_string(),
            percent(&v["click_through_rate"]),
            percent(&v["conversion_rate"]),
            fixed(&v["revenue_per_person"], 2),
            fixed(&v["revenue"], 2),
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
            "{:<10} {metric:<20} {:>9} {interval:>22} {:>9} {:>9}{}",
            c["variant"].as_str().unwrap_or("?"),
            percent(&rel["effect"]),
            fixed(&rel["p_value"], 4),
            fixed(&c["p_adjusted"], 4),
            if c["significant"] == true { "  significant" } else { "" }
        );
    }
    for note in r["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "note: {}", note.as_str().unwrap_or(""));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_report_without_exposures_shows_dashes_not_nan() {
        let report = serde_json::json!({
            "experiment": "x", "state": "running", "generated_at": "2026-12-05T00:00:00Z",
            "srm_warning": false, "srm": { "p_value": null },
            "variants": [{ "name": "a", "control": true, "persons": 0, "exposures": 0,
                "click_through_rate": null, "conversion_rate": null, "revenue_per_person": null,
                "revenue": 0.0, "cross_channel_purchases": 0 }],
            "comparisons": [{ "variant": "b", "metric": "conversion_rate", "primary": true,
                "relative": { "effect": null, "lower": null, "upper": null, "p_value": null },
                "p_adjusted": null, "significant": false }],
            "notes": [],
        });
        let text = super::render(&report);
        assert!(!text.contains("NaN"), "{text}");
        assert!(text.contains("(p = -)") && text.contains("0.00"), "{text}");
    }
}
