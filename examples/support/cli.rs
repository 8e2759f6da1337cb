//! Command-line plumbing shared by the load examples (`load.rs`,
//! `fleet_load.rs`).
//!
//! Not an example itself: those examples include it.

#![allow(dead_code)]

use std::process::ExitCode;

/// The parsed flags, or the exit code once usage is printed: to stdout with
/// success for `--help` (an empty message), to stderr after the error
/// otherwise.
pub fn flags_or_usage<T>(parsed: Result<T, String>, usage: &str) -> Result<T, ExitCode> {
    match parsed {
        Ok(flags) => Ok(flags),
        Err(msg) if msg.is_empty() => {
            print!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(msg) => {
            eprintln!("error: {msg}\n\n{usage}");
            Err(ExitCode::FAILURE)
        }
    }
}
