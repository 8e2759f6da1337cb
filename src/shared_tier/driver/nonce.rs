//! The random ids the tier writes.

/// 64 random bits, in hex: a lease's nonce, a chain's epoch.
pub(super) fn nonce() -> String {
    let mut bytes = [0u8; 8];
    // Without the OS's randomness nothing here can be made safe; it never
    // fails on the platforms tokio supports.
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
