//! A lease this process holds, as the protocol knows it.

/// A lease this process holds: its fence orders writes, its nonce tells
/// holders with one fence apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) fence: u64,
    pub(crate) nonce: String,
}

impl Lease {
    /// As stored in Redis, and as a redemption's mark.
    pub(crate) fn value(&self) -> String {
        format!("{}:{}", self.fence, self.nonce)
    }
}
