//! The `trainer` command: parses flags, runs one command, chooses the exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = trainer::Cli::parse();
    trainer::init_logging(cli.verbose);
    match trainer::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
