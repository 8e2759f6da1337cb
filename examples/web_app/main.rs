//! A web app that signs users in with the authorization-code flow and calls
//! an API as each of them: an axum app with `/login`, `/callback` and `/me`,
//! against an authorization server and an API on 127.0.0.1 (fixture.rs).
//!
//! - The app configures itself by discovery from the issuer URL: endpoints,
//!   client authentication, and the RFC 9207 `iss` check.
//! - `/login` keeps the pending authorization (state, PKCE verifier,
//!   redirect URI, expected issuer) in the session store as JSON and
//!   redirects; `/callback` finishes it from there, so it works on an
//!   instance that never saw the login: the app is restarted while Bob is
//!   at the authorization server.
//! - The sessions' token sources are one `KeyedTokenCache` keyed by
//!   session (bounded, idle sessions dropped, one gate): `/callback`
//!   inserts the user's source, and the cache's factory rebuilds it from the
//!   stored refresh token on an instance that has none. `/me` calls the API
//!   through one `BearerAuthLayer::keyed` client built at start-up, with
//!   that user's token. A revoked token is refreshed once and the call
//!   replayed.
//! - A callback whose `iss` was rewritten (a mix-up attack) is refused
//!   before any token request.
//!
//! Run it with `cargo run --example web_app`; it prints what happened and
//! exits. `tests/web_app.rs` runs the same flow and checks every count.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::Router;
use http::Request;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_bearer::BoxError;

#[path = "app.rs"]
mod app;
#[path = "browser.rs"]
mod browser;
#[path = "fixture.rs"]
mod fixture;

pub use app::{Log, SessionStore, WebApp};
pub use browser::{Browser, Page};
pub use fixture::{Counts, Fixture};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let outcome = run().await?;
    println!("What the app did:");
    for line in &outcome.log {
        println!("  {line}");
    }
    println!("\nWhat the users saw:");
    println!(
        "  alice, after signing in on instance 1:     {:?}",
        outcome.alice_signed_in
    );
    println!(
        "  bob, signed in across the restart:          {:?}",
        outcome.bob_signed_in
    );
    println!(
        "  alice, on instance 2:                       {:?}",
        outcome.alice_after_restart
    );
    println!(
        "  alice, after her token was revoked:         {:?}",
        outcome.alice_after_revocation
    );
    println!(
        "  a callback with a rewritten `iss`:          {:?}",
        outcome.mixed_up_callback
    );
    println!(
        "\nWhat the authorization server and the API counted: {:#?}",
        outcome.counts
    );
    Ok(())
}

/// What the run observed.
#[derive(Debug)]
pub struct Outcome {
    pub alice_signed_in: Page,
    pub bob_signed_in: Page,
    pub alice_after_restart: Page,
    pub alice_after_revocation: Page,
    pub mixed_up_callback: Page,
    pub counts: Counts,
    pub log: Vec<String>,
}

/// One address for the app whatever instance serves it, as behind a load
/// balancer: requests go to the instance deployed last.
pub struct Deployment {
    base: String,
    current: Arc<Mutex<Router>>,
}

impl Deployment {
    pub async fn start() -> Result<Self, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let current = Arc::new(Mutex::new(Router::new()));
        let serving = current.clone();
        let front = Router::new().fallback_service(tower::service_fn(move |req: Request<Body>| {
            let instance = serving.lock().unwrap().clone();
            instance.oneshot(req)
        }));
        tokio::spawn(async move { axum::serve(listener, front).await });
        Ok(Self { base, current })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Replaces the running instance; the old one is dropped with what it
    /// held in memory.
    pub fn deploy(&self, instance: Router) {
        *self.current.lock().unwrap() = instance;
    }
}

pub async fn run() -> Result<Outcome, BoxError> {
    let deployment = Deployment::start().await?;
    let base = deployment.base().to_owned();
    let redirect_uri = format!("{base}/callback");
    let idp = Fixture::start(&redirect_uri).await?;
    let store = Arc::new(SessionStore::default());
    let log = Log::default();
    let (issuer, api_url) = (idp.issuer(), idp.api_me_url());
    let instance = |name| {
        WebApp::start(
            name,
            &issuer,
            &redirect_uri,
            &api_url,
            store.clone(),
            log.clone(),
        )
    };
    deployment.deploy(instance("instance 1").await?.router());

    let alice = Browser::signed_in_at_the_idp_as("alice");
    let bob = Browser::signed_in_at_the_idp_as("bob");

    // Alice signs in: /login, the authorization server, /callback, /me.
    let alice_signed_in = alice.visit(&format!("{base}/login")).await?;

    // Bob starts; while he is at the authorization server, the app restarts.
    let bob_callback = bob
        .follow_until(&format!("{base}/login"), &redirect_uri)
        .await?;
    deployment.deploy(instance("instance 2").await?.router());
    let bob_signed_in = bob.visit(&bob_callback).await?;

    // Alice again, on the new instance.
    let alice_after_restart = alice.visit(&format!("{base}/me")).await?;

    // Her access token is revoked: the layer refreshes once and replays.
    idp.revoke_access_tokens_of("alice");
    let alice_after_revocation = alice.visit(&format!("{base}/me")).await?;

    // A sign-in whose callback names another issuer (a mix-up attack).
    let callback = alice
        .follow_until(&format!("{base}/login"), &redirect_uri)
        .await?;
    let sent_iss = serde_urlencoded::to_string([("iss", &issuer)])?;
    let rewritten = callback.replace(&sent_iss, "iss=https%3A%2F%2Fattacker.example");
    if rewritten == callback {
        return Err("the callback carried no `iss` to rewrite".into());
    }
    let mixed_up_callback = alice.visit(&rewritten).await?;

    let log = log.lock().unwrap().clone();
    Ok(Outcome {
        alice_signed_in,
        bob_signed_in,
        alice_after_restart,
        alice_after_revocation,
        mixed_up_callback,
        counts: idp.counts(),
        log,
    })
}
