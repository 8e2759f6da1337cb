//! DPoP-bound tokens (RFC 9449) through every front end (issue 23): hyper-util
//! and a tonic `Channel` under `BearerAuthLayer`, reqwest-middleware and
//! `ReqwestService`, against the verifying resource server of
//! `support/dpop_api.rs`, which checks every proof (signature, `htm`/`htu`,
//! `iat`, `jti` never reused, `ath`, its own nonce, the binding).
//!
//! What every front end must do, counted: the server's first nonce challenge
//! costs one replay with the same token and a new proof, and no token
//! request; once the nonce is known a request is sent once; a rotated nonce
//! costs one replay again; a revoked token is replaced once and the request
//! replayed with a proof for the new token; no proof is ever sent twice; a
//! token is never sent as a bearer token.

mod support;

#[path = "support/front_ends.rs"]
mod front_ends;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use front_ends::{Call, Front, Outcome, Payload, Setup, Tokens};
use support::dpop_api::{DpopApi, DpopCounts};
use tower_bearer::keyed::KeyedTokenCache;
use tower_bearer::oauth2::DpopKey;
use tower_bearer::{from_fn, AccessToken, TokenCache, TokenSource};

/// A source of `tok-N` bound to `key`, counting its fetches.
fn bound_tokens(key: &DpopKey, prefix: &'static str) -> (Arc<AtomicUsize>, impl TokenSource) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&fetches);
    let key = key.clone();
    let source = from_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let key = key.clone();
        async move { Ok(AccessToken::new(format!("{prefix}-{n}")).bound_with_dpop(Arc::new(key))) }
    });
    (fetches, source)
}

fn post(api: &DpopApi, path: &str) -> Call {
    Call {
        url: api.url(path),
        payload: Payload::Small,
        authorization: None,
        tenant: None,
    }
}

fn tokens_seen(api: &DpopApi) -> Vec<Option<String>> {
    api.seen().into_iter().map(|s| s.token).collect()
}

#[tokio::test]
async fn dpop_bound_tokens_through_every_front_end() {
    for front in Front::all() {
        let api = DpopApi::start().await;
        let key = DpopKey::generate_es256().unwrap();
        api.expect_jkt(tower_bearer::dpop::DpopProver::thumbprint(&key));
        let (fetches, source) = bound_tokens(&key, "tok");
        let cache = TokenCache::new(source);
        let tokens = Tokens::One(cache.clone());
        let mut call = front_ends::build(front, &Setup::default(), &tokens, api.addr).await;

        // No nonce yet: challenged once, sent again with the same token and
        // a new proof carrying the nonce; no token request for it.
        assert_eq!(
            call(post(&api, "/v1/things")).await,
            Outcome::Answer(200),
            "{front:?}"
        );
        let counts = api.counts();
        assert_eq!(
            (counts.requests, counts.nonce_challenges, counts.accepted),
            (2, 1, 1),
            "{front:?}"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "{front:?}");
        assert_eq!(
            tokens_seen(&api),
            [Some("tok-1".to_owned()), Some("tok-1".to_owned())],
            "{front:?}: the same token, sent as DPoP"
        );

        // The nonce is known: one send.
        assert_eq!(
            call(post(&api, "/v1/things?page=2")).await,
            Outcome::Answer(200),
            "{front:?}"
        );
        assert_eq!(api.counts().requests, 3, "{front:?}");

        // The server rotates its nonce: one challenge, one replay, no token.
        api.rotate_nonce();
        assert_eq!(
            call(post(&api, "/v1/other")).await,
            Outcome::Answer(200),
            "{front:?}"
        );
        let counts = api.counts();
        assert_eq!(
            (counts.requests, counts.nonce_challenges),
            (5, 2),
            "{front:?}"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 1, "{front:?}");

        // The token is revoked: replaced once, the request replayed with a
        // proof for the new token (its `ath` is the new token's hash).
        api.revoke("tok-1");
        assert_eq!(
            call(post(&api, "/v1/things")).await,
            Outcome::Answer(200),
            "{front:?}"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "{front:?}");
        let seen = tokens_seen(&api);
        assert_eq!(
            seen[5..],
            [Some("tok-1".to_owned()), Some("tok-2".to_owned())],
            "{front:?}"
        );

        let counts = api.counts();
        assert_eq!(
            DpopCounts {
                requests: 7,
                accepted: 4,
                nonce_challenges: 2,
                rejected: 1,
                reused_jti: 0,
                unchecked_bindings: 0,
            },
            counts,
            "{front:?}"
        );
        api.assert_no_proof_reused();
        assert_eq!(
            cache.stats().retries,
            3,
            "{front:?}: two nonces and one revocation"
        );
    }
}

#[tokio::test]
async fn concurrent_nonce_challenges_cost_no_token_request() {
    let api = DpopApi::start().await;
    let key = DpopKey::generate_es256().unwrap();
    api.expect_jkt(tower_bearer::dpop::DpopProver::thumbprint(&key));
    let (fetches, source) = bound_tokens(&key, "tok");
    let cache = TokenCache::new(source);
    cache.token().await.unwrap();
    let tokens = Tokens::One(cache.clone());
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let tokens = tokens.clone();
            let api = api.clone();
            tokio::spawn(async move {
                let mut call =
                    front_ends::build(Front::Hyper, &Setup::default(), &tokens, api.addr).await;
                call(post(&api, "/v1/things")).await
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Outcome::Answer(200));
    }
    let counts = api.counts();
    // Every request either carried the nonce or was challenged once and sent
    // again with it: never more than twice, never a token request.
    assert_eq!(counts.accepted, 20);
    assert_eq!(counts.requests, 20 + counts.nonce_challenges);
    assert!(counts.nonce_challenges <= 20);
    assert_eq!((counts.rejected, counts.reused_jti), (0, 0));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    api.assert_no_proof_reused();
}

#[tokio::test]
async fn a_keyed_cache_with_a_key_pair_per_tenant_or_one_shared() {
    for shared in [false, true] {
        let api = DpopApi::start().await;
        let shared_key = DpopKey::generate_es256().unwrap();
        let api_for_factory = api.clone();
        let tenants = KeyedTokenCache::builder(move |tenant: &String| {
            // Each tenant's tokens bound to its own key pair, or all to one.
            let key = if shared {
                shared_key.clone()
            } else {
                DpopKey::generate_es256().unwrap()
            };
            let (api, tenant) = (api_for_factory.clone(), tenant.clone());
            let n = Arc::new(AtomicUsize::new(0));
            from_fn(move || {
                let token = format!("{tenant}-{}", n.fetch_add(1, Ordering::SeqCst) + 1);
                api.bind_token(&token, tower_bearer::dpop::DpopProver::thumbprint(&key));
                let key = key.clone();
                async move { Ok(AccessToken::new(token).bound_with_dpop(Arc::new(key))) }
            })
        })
        .build();
        let setup = Setup {
            keyed: true,
            ..Setup::default()
        };
        let tokens = Tokens::Keyed(tenants.clone());
        for front in Front::all() {
            let mut call = front_ends::build(front, &setup, &tokens, api.addr).await;
            for tenant in ["a", "b"] {
                let mut request = post(&api, "/v1/things");
                request.tenant = Some(tenant);
                assert_eq!(
                    call(request).await,
                    Outcome::Answer(200),
                    "{front:?} {tenant}"
                );
            }
        }
        let counts = api.counts();
        assert_eq!(
            (
                counts.rejected,
                counts.reused_jti,
                counts.unchecked_bindings
            ),
            (0, 0, 0)
        );
        // Each tenant's token was proven with the key it is bound to.
        for seen in api.seen() {
            assert!(seen.token.is_some());
        }
        assert_eq!(
            tenants.stats().tokens.fetches,
            2,
            "one token per tenant (shared: {shared})"
        );
        api.assert_no_proof_reused();
    }
}
