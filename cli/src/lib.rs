//! What omnirec's binaries (`trainer`, `server`) share, so neither depends on the other:
//! logging set-up, writing to standard output and the wall clock. The core crates (`datasets`, `models`) stay free of
//! both, as they stay free of the environment.

/// Logs to standard error at `info` (`-v` debug, `-vv` trace) for the binary's own crate
/// `binary` and the core crates it runs; other crates log warnings. `OMNIREC_LOG` (an
/// env-filter directive, read here and nowhere else) overrides. Colours only on a terminal,
/// so logs piped to files stay plain text. A second call does nothing.
pub fn init_logging(binary: &str, verbose: u8) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OMNIREC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directive(binary, verbose)));
    let is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(is_terminal)
        .with_target(false)
        .try_init();
}

/// The default filter directive: warnings everywhere, `verbose`'s level for omnirec's crates.
fn directive(binary: &str, verbose: u8) -> String {
    let level = ["info", "debug", "trace"][usize::from(verbose.min(2))];
    format!("warn,{binary}={level},models={level},datasets={level}")
}

/// Writes `text` to standard output. A reader that went away (`| head`) ends the output
/// quietly: there is no one left to tell, and no reason to panic as `print!` would.
pub fn write_out(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_fmt(text) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `println!` through [`write_out`]: an `io::Result`, quiet on a closed pipe.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` through [`write_out`].
#[macro_export]
macro_rules! say_inline {
    ($($arg:tt)*) => { $crate::write_out(format_args!($($arg)*)) };
}

/// Seconds since the Unix epoch (0 for a clock before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_raises_omnirec_crates_only() {
        assert_eq!(directive("server", 0), "warn,server=info,models=info,datasets=info");
        assert_eq!(directive("trainer", 1), "warn,trainer=debug,models=debug,datasets=debug");
        assert_eq!(directive("trainer", 9), "warn,trainer=trace,models=trace,datasets=trace");
        // 2023-01-01 is in the past on any machine that runs this.
        assert!(unix_now() > 1_672_531_200);
    }
}
