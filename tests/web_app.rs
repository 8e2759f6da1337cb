//! The web-app example's flow (examples/web_app), compiled in as it is:
//! axum login, redirect, callback after a restart, per-session token
//! sources, API calls through the layer, a revoked token, a mix-up attack.
//! Every count is exact.

#[path = "../examples/web_app/main.rs"]
#[allow(dead_code)]
mod web_app;

use http::StatusCode;
use web_app::{Counts, Page};

fn page(status: StatusCode, body: &str) -> Page {
    Page {
        status,
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn login_callback_session_and_api_calls_with_each_users_token() {
    let outcome = web_app::run().await.unwrap();
    let log = outcome.log.join("\n");

    let pages = [
        ("alice signed in", &outcome.alice_signed_in, "hello alice"),
        // Bob's callback landed on an instance that never saw his login.
        ("bob signed in", &outcome.bob_signed_in, "hello bob"),
        // Alice's token source, gone with instance 1, came back from the store.
        ("restart", &outcome.alice_after_restart, "hello alice"),
        // Revoked: one refresh, the request replayed once.
        ("revocation", &outcome.alice_after_revocation, "hello alice"),
    ];
    for (what, got, body) in pages {
        assert_eq!(*got, page(StatusCode::OK, body), "{what}\n{log}");
    }
    for line in [
        "instance 1: session 2: sign-in started",
        "instance 2: session 2: signed in",
        "instance 2: session 1: no token source in memory: rebuilt",
        "token source fetches 1, requests replayed 1",
    ] {
        assert!(log.contains(line), "{line} not in\n{log}");
    }
    // The mix-up is refused by the app, before any token request.
    assert_eq!(outcome.mixed_up_callback.status, StatusCode::BAD_REQUEST);
    assert!(
        outcome
            .mixed_up_callback
            .body
            .contains("https://attacker.example"),
        "{:?}",
        outcome.mixed_up_callback
    );

    assert_eq!(
        outcome.counts,
        Counts {
            // Alice's and Bob's; none for the rewritten callback.
            code_exchanges: 2,
            // Alice's source rebuilt after the restart, then her revoked token.
            refreshes: 2,
            refused_token_requests: 0,
            // One each, plus the rejected request and its replay.
            api_requests: 5,
            api_rejections: 1,
        }
    );
    // Nothing secret reached the log: no state, verifier, code or token.
    for secret in ["code-", "at-", "rt-", "code_verifier", "state="] {
        assert!(!log.contains(secret), "{secret} in\n{log}");
    }
}
