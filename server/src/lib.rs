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

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod lab;
pub mod live;
pub mod pool;
pub mod registry;
pub mod report;
pub mod routes;
pub mod state;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

pub use error::{Error, Result};

/// Serves `state` on `listener` until `shutdown` completes; then stops accepting, marks the
/// server not ready, closes idle connections and lets in-flight requests finish, for at
/// most `shutdown_timeout_ms`: after that it returns whatever is still open.
///
/// Each connection is HTTP/1.1 with keep-alive. A client must send a complete request head
/// within `header_read_timeout_ms` of starting one, so connections that trickle or stall
/// their head are closed instead of being held open for ever (and cannot hold up shutdown).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<state::AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let config = state.config.clone();
    accept_loop(listener, &config, Loading::Done(state), shutdown).await
}

/// [`serve`], answering while `load` builds the state (a large artifact takes seconds to
/// load): until it is done `/health/live` answers 200 and every other request 503
/// `loading`, so an orchestrator sees a live process that is not ready yet instead of a
/// closed port. Then every connection, open or new, gets the state's routes. A failed load
/// ends serving with its error. `config` gives the timeouts.
pub async fn serve_while_loading(
    listener: tokio::net::TcpListener,
    config: &config::ServerConfig,
    load: impl Future<Output = Result<Arc<state::AppState>>> + Send + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    accept_loop(listener, config, Loading::Running(tokio::spawn(load)), shutdown).await
}

/// The state, or the task that builds it.
enum Loading {
    Done(Arc<state::AppState>),
    Running(tokio::task::JoinHandle<Result<Arc<state::AppState>>>),
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    config: &config::ServerConfig,
    loading: Loading,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::time::Duration;
    use tower::ServiceExt;

    pool::set_slice(Duration::from_micros(config.scoring_slice_us));

    let loaded: Arc<std::sync::OnceLock<(Arc<state::AppState>, axum::Router)>> = Arc::default();
    let app = {
        let loaded = Arc::clone(&loaded);
        tower::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let loaded = Arc::clone(&loaded);
            async move {
                let request = request.map(axum::body::Body::new);
                match loaded.get() {
                    Some((_, router)) => router.clone().oneshot(request).await,
                    None => Ok(routes::while_loading(request.uri().path())),
                }
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(config.header_read_timeout_ms));
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    // A state given ready is in place before the first connection is accepted.
    let (mut loading, mut waiting) = match loading {
        Loading::Done(state) => {
            let router = routes::router(Arc::clone(&state));
            tokio::spawn(Arc::clone(&state).watch_inbox());
            let _ = loaded.set((state, router));
            (tokio::spawn(std::future::pending()), false)
        }
        Loading::Running(task) => (task, true),
    };
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            biased;
            done = &mut loading, if waiting => {
                waiting = false;
                let state = done.map_err(|e| Error::Io(std::io::Error::other(format!("loading failed: {e}"))))??;
                let router = routes::router(Arc::clone(&state));
                tokio::spawn(Arc::clone(&state).watch_inbox());
                // Set once, here: nothing else writes the cell.
                let _ = loaded.set((state, router));
                tracing::info!("ready");
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    loading.abort();
    if let Some((state, _)) = loaded.get() {
        routes::start_draining(state);
    }
    let grace = Duration::from_millis(config.shutdown_timeout_ms);
    tracing::info!("shutting down: finishing in-flight requests (at most {} ms)", grace.as_millis());
    if tokio::time::timeout(grace, connections.shutdown()).await.is_err() {
        tracing::warn!("shutdown deadline passed with connections still open; closing them");
    }
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
