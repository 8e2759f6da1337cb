//! Unguessable values (PKCE verifiers, `state`) straight from the operating
//! system's CSPRNG: no userspace generator to seed or get wrong.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Random base64url text of exactly `len` characters (6 random bits each).
///
/// # Panics
///
/// If the operating system cannot provide random numbers.
pub(super) fn random_text(len: usize) -> String {
    let mut bytes = vec![0u8; (len * 6).div_ceil(8)];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    let mut text = URL_SAFE_NO_PAD.encode(bytes);
    text.truncate(len);
    text
}
