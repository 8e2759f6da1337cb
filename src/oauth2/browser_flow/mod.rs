//! The browser flow: signing a user in with the authorization-code grant.
//!
//! [`AuthorizationCode`] is the flow as configured; [`start`](AuthorizationCode::start)
//! makes the [`AuthorizeUrl`] to send the user to, with a [`CsrfState`], a
//! PKCE pair ([`PkceVerifier`], [`PkceChallenge`]) and the expected issuer,
//! kept as a [`PendingAuthorization`] until the [`Callback`] arrives. The
//! callback is checked (`state`, then RFC 9207's `iss` in `issuer_check.rs`,
//! then the server's error, then the code) before its code is exchanged,
//! once, through the token endpoint (`../endpoint`). `uri_reference.rs`
//! finds a callback URL's query and fragment.

pub(super) mod authorization_code;
pub(super) mod authorize_url;
pub(super) mod callback;
pub(super) mod csrf_state;
pub(super) mod issuer_check;
pub(super) mod pending_authorization;
pub(super) mod pkce;
pub(super) mod uri_reference;

pub use self::authorization_code::{AuthorizationCode, AuthorizationRequest};
pub use self::authorize_url::AuthorizeUrl;
pub use self::callback::Callback;
pub use self::csrf_state::CsrfState;
pub use self::pending_authorization::PendingAuthorization;
pub use self::pkce::{PkceChallenge, PkceVerifier};
