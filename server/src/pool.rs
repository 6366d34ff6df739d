//! CPU work (scoring, reports) on the rayon pool, off the async executor, and how the pool's
//! threads share the cores with the executor's.
//!
//! The executor's thread reads requests and writes answers; the pool's threads score (and
//! turn a recommendation into its JSON, see `routes::recommendations::answer`). Under
//! load a scoring thread always has another answer queued, so it never sleeps, and the
//! kernel lets it run its whole slice (milliseconds) before a woken executor thread gets
//! the core. Meanwhile finished answers wait unwritten and new requests unread, then go
//! through in a burst: on 2 cores at 32 connections a `home` request's wait in the pool's
//! queue ranged from 0.5 ms (p10) to 3.0 ms (p90), and p99 was twice p50. So a scoring
//! thread that has scored for
//! [`ServerConfig::scoring_slice_us`](crate::config::ServerConfig::scoring_slice_us) since it
//! last did yields its core after the answer in hand (`sched_yield`: a no-op when no other
//! thread waits for the core). `bash benches/loadtest.sh` measures the effect (README,
//! "Serving").
//!
//! The pool has one thread per core, and [`start`] pins each to its own core: a request's
//! scoring reads the members' data of the request before it (EASE's rows, content's
//! postings, the score buffers) from that core's L2 cache, where a thread the kernel moved
//! to the other core would read them from L3.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// The scoring slice in microseconds, for every pool thread (0: never yield).
static SLICE_US: AtomicU64 = AtomicU64::new(DEFAULT_SLICE_US);

/// [`ServerConfig::scoring_slice_us`](crate::config::ServerConfig::scoring_slice_us)'s default.
pub const DEFAULT_SLICE_US: u64 = 500;

/// Sets the scoring slice of every pool thread from now on (the pool is the process's).
pub fn set_slice(slice: Duration) {
    SLICE_US.store(u64::try_from(slice.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

thread_local! {
    /// When this pool thread last yielded (or first finished a job).
    static TURN: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Starts the scoring pool (rayon's global pool: `RAYON_NUM_THREADS` threads, else one per
/// core the process may use), its threads pinned one to each core the process may run on
/// when `pin` holds and there are at least as many threads as such cores, two or more
/// (Linux; elsewhere `pin` does nothing). Fewer threads than cores (a CPU quota below the
/// cores the process sees, say) stay unpinned: pinned, every such process would crowd the
/// first cores. A thread whose pinning fails runs unpinned, with a warning. Returns `false`
/// when the pool was already running (its threads stay as they are).
pub fn start(pin: bool) -> bool {
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
    let mut builder = rayon::ThreadPoolBuilder::new().num_threads(threads);
    let cores = if pin { allowed_cores() } else { Vec::new() };
    if cores.len() > 1 && threads >= cores.len() {
        builder = builder.start_handler(move |index| pin_to(cores[index % cores.len()]));
    }
    builder.build_global().is_ok()
}

/// The cores this process may run on, ascending (none where that is unknown).
#[cfg(target_os = "linux")]
fn allowed_cores() -> Vec<usize> {
    use rustix::thread::{CpuSet, sched_getaffinity};
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&cpu| set.is_set(cpu)).collect(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the CPU affinity; scoring threads stay unpinned");
            Vec::new()
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cores() -> Vec<usize> {
    Vec::new()
}

/// Pins the calling thread to `core`.
#[cfg(target_os = "linux")]
fn pin_to(core: usize) {
    use rustix::thread::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    set.set(core);
    if let Err(error) = sched_setaffinity(None, &set) {
        tracing::warn!(%error, core, "cannot pin a scoring thread; it runs unpinned");
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_core: usize) {}

/// Runs `work` on the rayon pool and waits for it without blocking the executor. A panic in
/// `work` is answered as an internal error.
pub(crate) async fn on_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = tx.send(result);
        let slice = Duration::from_micros(SLICE_US.load(Ordering::Relaxed));
        let now = Instant::now();
        match next_turn(TURN.get(), now, slice) {
            // The next turn begins when the core comes back.
            (_, true) => {
                std::thread::yield_now();
                TURN.set(Some(Instant::now()));
            }
            (turn, false) => TURN.set(turn),
        }
    });
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        _ => Err(ApiError::internal("a scoring task panicked")),
    }
}

/// After a job that ends at `now` on a thread whose turn began at `turn` (`None`: its first
/// job): whether it yields, and when its next turn begins. A zero `slice` never yields.
fn next_turn(turn: Option<Instant>, now: Instant, slice: Duration) -> (Option<Instant>, bool) {
    match turn {
        None => (Some(now), false),
        Some(_) if slice.is_zero() => (Some(now), false),
        Some(began) if now.duration_since(began) >= slice => (Some(now), true),
        Some(began) => (Some(began), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_yields_once_per_slice_of_scoring() {
        let slice = Duration::from_micros(500);
        let start = Instant::now();
        let at = |us: u64| start + Duration::from_micros(us);
        // Jobs of 180 µs: the first one's end starts the turn, the fourth's passes the slice
        // (540 µs later), and so on.
        let mut turn = None;
        let mut yielded = Vec::new();
        for end in [180, 360, 540, 720, 900, 1080, 1260] {
            let (next, yields) = next_turn(turn, at(end), slice);
            turn = next;
            if yields {
                yielded.push(end);
            }
        }
        assert_eq!(yielded, [720, 1260]);
        assert_eq!(turn, Some(at(1260)));
    }

    #[test]
    fn a_zero_slice_never_yields() {
        let start = Instant::now();
        let mut turn = None;
        for end in [0u64, 10_000, 1_000_000] {
            let (next, yields) = next_turn(turn, start + Duration::from_micros(end), Duration::ZERO);
            assert!(!yields);
            turn = next;
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pinned_thread_runs_on_its_core_only() {
        use rustix::thread::{CpuSet, sched_getaffinity};
        let cores = allowed_cores();
        assert!(!cores.is_empty() && cores.is_sorted(), "{cores:?}");
        let core = *cores.last().unwrap();
        // A pool of its own, pinned as `start` pins the global one.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .start_handler(move |_| pin_to(core))
            .build()
            .unwrap();
        let set = pool.install(|| sched_getaffinity(None)).unwrap();
        let on: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&cpu| set.is_set(cpu)).collect();
        assert_eq!(on, [core]);
        // The caller's own affinity is untouched.
        assert_eq!(allowed_cores(), cores);
    }

    #[tokio::test]
    async fn work_runs_on_the_pool_and_a_panic_is_an_error() {
        let thread = on_pool(|| std::thread::current().id()).await.ok();
        assert!(thread.is_some_and(|id| id != std::thread::current().id()));
        let panicked = on_pool(|| -> u32 { panic!("a failing job") }).await;
        assert!(panicked.is_err());
    }
}
