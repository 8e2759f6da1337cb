//! The fields of an entry as read: untrusted, so numbers are bounded, ids
//! checked and texts capped; and durations in the milliseconds Redis takes.

use std::time::Duration;

use crate::shared_tier::encryption::Unreadable;

/// The largest number read from Redis: larger ones (or ones Lua would turn
/// into floats) are malformed.
const MAX_NUMBER: u64 = 999_999_999_999_999;

/// The longest writer nonce or chain epoch: 16 hex digits are written.
const MAX_ID_LEN: usize = 32;

/// A decimal number this crate could have written.
pub(super) fn number(field: &Option<Vec<u8>>) -> Result<u64, Unreadable> {
    let text = field.as_deref().ok_or(Unreadable::Malformed)?;
    if text.is_empty() || text.len() > 15 || !text.iter().all(u8::is_ascii_digit) {
        return Err(Unreadable::Malformed);
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|n| *n <= MAX_NUMBER)
        .ok_or(Unreadable::Malformed)
}

/// A writer nonce or chain epoch: lowercase hex.
pub(super) fn id(field: &Option<Vec<u8>>) -> Result<String, Unreadable> {
    let text = text(field)?;
    if text.is_empty()
        || text.len() > MAX_ID_LEN
        || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(Unreadable::Malformed);
    }
    Ok(text)
}

pub(super) fn text(field: &Option<Vec<u8>>) -> Result<String, Unreadable> {
    field
        .as_deref()
        .filter(|t| t.len() <= 256)
        .and_then(|t| std::str::from_utf8(t).ok())
        .map(str::to_owned)
        .ok_or(Unreadable::Malformed)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
