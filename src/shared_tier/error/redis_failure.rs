//! Why Redis could not be used for one step (inside the crate).

use std::fmt;

/// Why Redis could not serve one step of a fetch.
#[derive(Debug, Clone)]
pub(crate) enum RedisFailure {
    /// Backing off after earlier failures: Redis was not asked.
    BackingOff,
    /// A command took longer than the Redis timeout (it may still run).
    TimedOut(&'static str),
    /// A command failed; the message is redacted.
    Failed(&'static str, String),
}

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BackingOff => f.write_str("backing off from Redis after failures"),
            Self::TimedOut(op) => write!(f, "Redis {op} timed out"),
            Self::Failed(op, message) => write!(f, "Redis {op} failed: {message}"),
        }
    }
}

impl std::error::Error for RedisFailure {}
