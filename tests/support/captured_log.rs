//! Tracing output captured as text, for the suites that assert what tracing
//! shows (a label, a cache name) and what it never shows (a secret).

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;
use tracing::Level;
use tracing_subscriber::fmt::format::FmtSpan;

/// Everything a `fmt` subscriber wrote while its guard lived.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures every event up to `level`, and the span events asked for, on
    /// this thread (where a current-thread runtime runs every task) while the
    /// guard lives.
    pub fn start(level: Level, span_events: FmtSpan) -> (Self, DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_span_events(span_events)
            .with_ansi(false)
            .with_writer({
                let captured = captured.clone();
                move || captured.clone()
            })
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// Captures everything: every event at TRACE and every span's life.
    pub fn trace() -> (Self, DefaultGuard) {
        Self::start(Level::TRACE, FmtSpan::FULL)
    }

    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
