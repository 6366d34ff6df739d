//! The omnirec server: loads a model artifact and answers every channel over HTTP/JSON with
//! blended recommendations filtered by placements' business rules.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = server::config::ServerConfig { model: Some("model.omr".into()), ..Default::default() };
//! let state = server::state::AppState::new(config, |name| std::env::var(name).ok())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server::serve(listener, state, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! This is the only crate of the workspace that knows HTTP.

pub mod api;
pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod state;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

pub use error::{Error, Result};

/// Serves `state` on `listener` until `shutdown` completes; then stops accepting, marks the
/// server not ready, and lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<state::AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = api::router(Arc::clone(&state));
    let draining = Arc::clone(&state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            api::start_draining(&draining);
            tracing::info!("shutting down: finishing in-flight requests");
        })
        .await?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
