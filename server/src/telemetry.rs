//! Prometheus metrics: request counts and latency per route and placement, fallbacks, the
//! model version; and the clock.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: fine below 10 ms, where answers should be.
const BUCKETS: [f64; 14] =
    [0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.005, 0.007_5, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Seconds since the metrics were first used (the server's start, in practice).
pub fn uptime_seconds() -> f64 {
    started().elapsed().as_secs_f64()
}

fn started() -> Instant {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

/// The process-wide recorder's handle (installed on first use; metrics are global).
pub fn handle() -> PrometheusHandle {
    started();
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("omnirec_http_request_duration_seconds".into()),
                    &BUCKETS,
                )
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            keep_up(handle.clone(), UPKEEP_EVERY);
            handle
        })
        .clone()
}

/// How often the recorder's histograms are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the recorder's recorded latencies into their histograms every `every`, on a thread
/// of its own for the life of the process. The recorder appends every observation to a list
/// that only a scrape of `/metrics` or an upkeep drains: without this, a server nobody
/// scrapes would keep 8 bytes per request for ever. Returns the count of upkeeps the
/// thread has run.
fn keep_up(
    handle: PrometheusHandle,
    every: std::time::Duration,
) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = std::sync::Arc::clone(&runs);
    let started = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            handle.run_upkeep();
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    if let Err(error) = started {
        tracing::warn!(%error, "cannot start the metrics upkeep; latencies accumulate until /metrics is scraped");
    }
    runs
}

/// Logs to stderr at `info` (`-v` debug, `-vv` trace) for the server and the crates it
/// runs; `OMNIREC_LOG` (an env-filter directive) overrides: [`cli::init_logging`].
pub fn init_logging(verbose: u8) {
    cli::init_logging("server", verbose);
}

/// Marks `new` as the served model version (and `old` as no longer served).
pub fn model_loaded(old: Option<&str>, new: &str) {
    if let Some(old) = old.filter(|old| *old != new) {
        metrics::gauge!("omnirec_model_info", "version" => old.to_string()).set(0.0);
    }
    metrics::gauge!("omnirec_model_info", "version" => new.to_string()).set(1.0);
}

/// What a handler reports about its answer, for the metrics labels.
#[derive(Debug, Clone)]
pub struct Labels {
    /// The placement used.
    pub placement: String,
    /// The fallback reason, when not personalised.
    pub fallback: Option<&'static str>,
}

/// Middleware: counts and times every request by route, placement and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let elapsed = start.elapsed().as_secs_f64();
    let answered = response.extensions().get::<Labels>();
    let placement = answered.map_or(String::new(), |a| a.placement.clone());
    if let Some(Labels { placement, fallback: Some(reason) }) = answered {
        metrics::counter!("omnirec_fallbacks_total", "placement" => placement.clone(), "reason" => *reason)
            .increment(1);
    }
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "omnirec_http_requests_total",
        "route" => route.clone(),
        "placement" => placement.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!("omnirec_http_request_duration_seconds", "route" => route, "placement" => placement)
        .record(elapsed);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upkeep_runs_without_a_scrape() {
        // This thread's own count: the process's recorder has an upkeep thread of its own.
        let recorder = PrometheusBuilder::new().build_recorder();
        let runs = keep_up(recorder.handle(), std::time::Duration::from_millis(5));
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while runs.load(std::sync::atomic::Ordering::Relaxed) < 2 {
            assert!(Instant::now() < deadline, "no upkeep within 10 s");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
