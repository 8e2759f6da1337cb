//! An authorization server's metadata (RFC 8414, OpenID Connect Discovery):
//! fetched from an issuer URL by [`Discovery`], read as
//! [`AuthorizationServerMetadata`] (`metadata.rs`), which configures the
//! token endpoint, the client authentication and the browser flow from what
//! the server says of itself; [`DiscoveryError`] when it cannot be had.

pub(super) mod discovery;
pub(super) mod discovery_error;
pub(super) mod metadata;

pub use self::discovery::Discovery;
pub use self::discovery_error::DiscoveryError;
pub use self::metadata::AuthorizationServerMetadata;
