//! `GET /dashboard`: one HTML page for A/B testers and operators (role `admin`; a browser
//! presents the key as the Basic password). Server-rendered, inline SVG, no script: the
//! registry's versions with their offline metrics, each experiment's report (sample-ratio
//! status, per-variant counts, comparisons, notes) with a chart of each variant's conversion
//! rate and its interval over time, and serving health from the process's metrics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Html;
use models::experiment::Experiment;
use models::experiment::report::{RatePoint, Report};

use crate::error::ApiError;
use crate::pool::on_pool;
use crate::state::AppState;

/// Points on each experiment's chart.
const CHART_POINTS: i64 = 12;
/// One colour per variant, in order (then repeated).
const COLOURS: [&str; 6] = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2"];

/// Text made safe inside HTML elements and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(x: f64) -> String {
    if x.is_finite() { format!("{:.2} %", x * 100.0) } else { "–".into() }
}

/// The chart of each variant's conversion rate over time: a band for the interval, a line
/// for the rate, and one mark per variant at its latest point.
pub(crate) fn chart(experiment: &Experiment, series: &[Vec<RatePoint>]) -> String {
    let (width, height, left, bottom, top, right) = (640.0, 240.0, 56.0, 28.0, 12.0, 110.0);
    let all: Vec<&RatePoint> = series.iter().flatten().collect();
    let (t0, t1) = match (all.iter().map(|p| p.at).min(), all.iter().map(|p| p.at).max()) {
        (Some(a), Some(b)) if b > a => (a as f64, b as f64),
        (Some(a), _) => (a as f64 - 1.0, a as f64 + 1.0),
        _ => (0.0, 1.0),
    };
    let y_max = round_up(all.iter().map(|p| p.upper).fold(0.0f64, f64::max).max(0.01));
    let x = |t: i64| left + (t as f64 - t0) / (t1 - t0) * (width - left - right);
    let y = |v: f64| height - bottom - v / y_max * (height - bottom - top);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" data-experiment="{}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="conversion rate by variant over time">"#,
        escape(&experiment.name)
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{left}" y1="{top}" x2="{left}" y2="{b}" stroke="#888"/>"##,
        b = height - bottom,
        r = width - right
    );
    for tick in 0..=4 {
        let v = y_max * f64::from(tick) / 4.0;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end" fill="#555">{}</text>"##,
            left - 4.0,
            y(v) + 3.0,
            percent(v)
        );
    }
    for (t, anchor) in [(t0 as i64, "start"), (t1 as i64, "end")] {
        let label = datasets::schema::format_timestamp(t).replace('T', " ");
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="{anchor}" fill="#555">{}</text>"##,
            x(t),
            height - 8.0,
            escape(label.trim_end_matches('Z'))
        );
    }
    let mut labels: Vec<(f64, f64, &str, &str)> = Vec::new();
    for (v, points) in series.iter().enumerate() {
        let colour = COLOURS[v % COLOURS.len()];
        let name = experiment.variants.get(v).map_or("", |variant| variant.name.as_str());
        if points.is_empty() {
            continue;
        }
        let band: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.at), y(p.upper)))
            .chain(points.iter().rev().map(|p| format!("{:.1},{:.1}", x(p.at), y(p.lower))))
            .collect();
        let _ = write!(
            svg,
            r#"<polygon points="{}" fill="{colour}" fill-opacity="0.15" stroke="none"/>"#,
            band.join(" ")
        );
        let line: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p.at), y(p.rate))).collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            line.join(" ")
        );
        if let Some(last) = points.last() {
            let _ = write!(
                svg,
                r#"<circle class="variant-mark" data-variant="{name}" cx="{:.1}" cy="{:.1}" r="4" fill="{colour}"><title>{name}: {} ({} – {}), {} persons</title></circle>"#,
                x(last.at),
                y(last.rate),
                percent(last.rate),
                percent(last.lower),
                percent(last.upper),
                last.persons,
                name = escape(name),
            );
            labels.push((y(last.rate) + 4.0, x(last.at) + 8.0, colour, name));
        }
    }
    // Labels kept 12 px apart (equal rates would print them on top of each other), names
    // shortened to fit; the full name is in the mark's title.
    labels.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut previous = f64::NEG_INFINITY;
    for (label_y, label_x, colour, name) in labels {
        let label_y = label_y.max(previous + 12.0);
        previous = label_y;
        let short: String = if name.chars().count() > 16 {
            name.chars().take(15).chain(std::iter::once('…')).collect()
        } else {
            name.to_string()
        };
        let _ = write!(
            svg,
            r#"<text x="{label_x:.1}" y="{label_y:.1}" font-size="11" fill="{colour}">{}</text>"#,
            escape(&short)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The smallest of 1, 2 or 5 times a power of ten at or above `x`: the chart's top.
fn round_up(x: f64) -> f64 {
    let power = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|v| *v >= x).unwrap_or(10.0 * power)
}

/// The cut-offs of an experiment's chart: evenly from its start to now (or its end).
fn cutoffs(experiment: &Experiment, now: i64) -> Vec<i64> {
    let end = experiment.stopped_at.or(experiment.end).unwrap_or(now).min(now);
    let start = experiment.start.min(end);
    let span = (end - start).max(1);
    let mut cutoffs: Vec<i64> = (1..=CHART_POINTS).map(|i| start + span * i / CHART_POINTS).collect();
    cutoffs.dedup();
    cutoffs
}

fn experiment_section(
    html: &mut String,
    experiment: &Experiment,
    report: &Report,
    series: &[Vec<RatePoint>],
    now: i64,
) {
    let body = super::experiments::report_response(experiment, report, now);
    let _ = write!(
        html,
        r#"<section class="experiment" data-experiment="{name}"><h3>{name} <small>({state}; placements: {placements})</small></h3>"#,
        name = escape(&experiment.name),
        state = body.state,
        placements = escape(&experiment.placements.join(", ")),
    );
    let srm = match (&body.srm, body.srm_warning) {
        (_, true) => {
            let channels: Vec<String> = body
                .srm_by_channel
                .iter()
                .filter(|(_, s)| s.warning)
                .map(|(c, s)| format!("{} (p = {:.2e})", escape(c), s.p_value))
                .collect();
            format!(
                r#"<p class="srm srm-warning">Sample-ratio mismatch: {}{}. Do not trust the comparisons.</p>"#,
                body.srm.as_ref().map_or(String::new(), |s| format!("overall p = {:.2e}", s.p_value)),
                if channels.is_empty() {
                    String::new()
                } else {
                    format!("; channels {}", channels.join(", "))
                }
            )
        }
        (Some(s), false) => format!(r#"<p class="srm srm-ok">Sample ratio OK (p = {:.3}).</p>"#, s.p_value),
        (None, false) => r#"<p class="srm">No exposures yet.</p>"#.to_string(),
    };
    html.push_str(&srm);
    html.push_str("<table><tr><th>variant</th><th>share</th><th>persons</th><th>exposures</th><th>CTR</th><th>conversion</th><th>revenue / person</th><th>revenue</th><th>cross-channel purchases</th></tr>");
    for v in &body.variants {
        let _ = write!(
            html,
            "<tr><td>{}{}</td><td>{:.0} %</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
            escape(&v.name),
            if v.control { " (control)" } else { "" },
            v.share * 100.0,
            v.persons,
            v.exposures,
            percent(v.click_through_rate),
            percent(v.conversion_rate),
            v.revenue_per_person,
            v.revenue,
            v.cross_channel_purchases,
        );
    }
    html.push_str("</table>");
    html.push_str("<table><tr><th>variant</th><th>metric</th><th>lift</th><th>interval</th><th>p</th><th>p (Holm)</th><th>significant</th></tr>");
    for c in &body.comparisons {
        let (lift, interval, p) = match &c.relative {
            // A relative lift is never below −100 % (the delta method's interval can reach there).
            Some(r) => (
                percent(r.effect),
                format!("{} … {}", percent(r.lower.max(-1.0)), percent(r.upper)),
                format!("{:.4}", r.p_value),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}{}</td><td>{lift}</td><td>{interval}</td><td>{p}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.variant),
            c.metric,
            if c.primary { " (primary)" } else { "" },
            c.p_adjusted.map_or("–".into(), |p| format!("{p:.4}")),
            if c.significant { "yes" } else { "no" },
        );
    }
    html.push_str("</table>");
    for note in &body.notes {
        let _ = write!(html, "<p class=\"note\">{}</p>", escape(note));
    }
    html.push_str(&chart(experiment, series));
    html.push_str("</section>");
}

/// Request rate, latency percentiles of recommendation answers, fallback rate and ingest rate,
/// since the process started, from the Prometheus text `/metrics` serves.
fn health_section(html: &mut String, metrics: &str, uptime: f64) {
    let mut requests = 0.0;
    let mut fallbacks = 0.0;
    let mut events = 0.0;
    let mut answers = 0.0;
    let mut buckets: BTreeMap<u64, f64> = BTreeMap::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let is_recommendation = name.contains("recommendations") || name.contains("similar");
        if name.starts_with("omnirec_http_requests_total") {
            requests += value;
            if is_recommendation {
                answers += value;
            }
        } else if name.starts_with("omnirec_fallbacks_total") {
            fallbacks += value;
        } else if name.starts_with("omnirec_events_total") && name.contains("accepted") {
            events += value;
        } else if name.starts_with("omnirec_http_request_duration_seconds_bucket") && is_recommendation {
            let le = name.split("le=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("+Inf");
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
            *buckets.entry(bound.to_bits()).or_default() += value;
        }
    }
    let mut cumulative: Vec<(f64, f64)> = buckets.into_iter().map(|(b, n)| (f64::from_bits(b), n)).collect();
    cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = cumulative.last().map_or(0.0, |c| c.1);
    let quantile = |q: f64| -> String {
        if total <= 0.0 {
            return "–".into();
        }
        let rank = q * total;
        let mut previous = (0.0, 0.0);
        for &(bound, count) in &cumulative {
            if count >= rank {
                if !bound.is_finite() {
                    return format!("> {:.1} ms", previous.0 * 1e3);
                }
                let share = if count > previous.1 { (rank - previous.1) / (count - previous.1) } else { 1.0 };
                return format!("{:.2} ms", (previous.0 + share * (bound - previous.0)) * 1e3);
            }
            previous = (bound, count);
        }
        "–".into()
    };
    let per_second = |n: f64| if uptime > 0.0 { n / uptime } else { 0.0 };
    let _ = write!(
        html,
        "<section id=\"health\"><h2>Serving health <small>(since start, {uptime:.0} s)</small></h2><table>\
         <tr><th>requests / s</th><td>{:.2}</td></tr>\
         <tr><th>recommendation latency p50 / p90 / p99</th><td>{} / {} / {}</td></tr>\
         <tr><th>fallback rate (answers not personalised)</th><td>{}</td></tr>\
         <tr><th>events ingested / s</th><td>{:.2}</td></tr></table></section>",
        per_second(requests),
        quantile(0.5),
        quantile(0.9),
        quantile(0.99),
        percent(if answers > 0.0 { fallbacks / answers } else { 0.0 }),
        per_second(events),
    );
}

/// The dashboard page.
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "experiments",
    responses(
        (status = 200, description = "The dashboard", content_type = "text/html", body = String),
        (status = 401, description = "Missing or unknown API key (a browser is asked for it: Basic, the key as password)", body = crate::error::ErrorBody),
        (status = 403, description = "Key lacks the admin role", body = crate::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
pub(super) async fn dashboard(State(state): State<Arc<AppState>>) -> Result<Html<String>, ApiError> {
    let now = cli::unix_now();
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>omnirec dashboard</title><style>\
         body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}\
         td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}\
         .srm-warning{color:#b00;font-weight:bold}.srm-ok{color:#286a28}.note{color:#555}section{margin-bottom:28px}\
         </style></head><body><h1>omnirec</h1>",
    );
    let _ = write!(html, "<p>Generated {}</p>", datasets::schema::format_timestamp(now));
    html.push_str("<section id=\"models\"><h2>Model versions</h2><table><tr><th>version</th><th>state</th><th>loaded</th><th>blend NDCG@10</th><th>blend recall@10</th><th>coverage</th></tr>");
    for v in super::models::versions(&state, true)? {
        let blend = v.metrics.get("blend");
        let number = |key: &str| {
            blend
                .and_then(|b| b.get(key))
                .and_then(serde_json::Value::as_f64)
                .map_or("–".into(), |x| format!("{x:.4}"))
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&v.model_version),
            v.state,
            escape(v.loaded_at.as_deref().unwrap_or("–")),
            number("ndcg"),
            number("recall"),
            number("coverage"),
        );
    }
    html.push_str("</table></section><section id=\"experiments\"><h2>Experiments</h2>");
    let experiments = state.experiments.load_full();
    if experiments.is_empty() {
        html.push_str("<p>No experiment defined (PUT /v1/experiments/{name}).</p>");
    }
    if let (Some(store), false) = (state.store.clone(), experiments.is_empty()) {
        // One scan of the event log for every experiment's rows.
        let for_pool = Arc::clone(&experiments);
        let sections = on_pool(move || -> Result<_, ApiError> {
            let all: Vec<&Experiment> = for_pool.iter().map(|e| &**e).collect();
            let rows = crate::lab::report_rows_of(&store, &all).map_err(ApiError::store)?;
            Ok(all
                .iter()
                .zip(rows)
                .map(|(e, (exposures, outcomes, pre))| {
                    let report = models::experiment::report::report(e, &exposures, &outcomes, &pre);
                    let series =
                        models::experiment::report::timeline(e, &exposures, &outcomes, &cutoffs(e, now));
                    (report, series)
                })
                .collect::<Vec<_>>())
        })
        .await??;
        for (experiment, (report, series)) in experiments.iter().zip(&sections) {
            experiment_section(&mut html, experiment, report, series, now);
        }
    }
    html.push_str("</section>");
    health_section(&mut html, &state.metrics.render(), crate::telemetry::uptime_seconds());
    html.push_str("</body></html>");
    Ok(Html(html))
}
