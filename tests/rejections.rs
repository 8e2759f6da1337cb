//! Rejections, weighed against real servers (issue 22).
//!
//! 4. Another origin's 401 counted: reqwest follows a redirect to another
//!    origin that answers 401 (the middleware scoped with `only_for_origins`,
//!    and `ReqwestService`).

#![cfg(feature = "reqwest")]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::api::{Api, ApiMode};
use support::token_endpoint::TokenEndpoint;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthLayer, TokenCache};

const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------
// 4. Only the origin the token went to can reject it
// ---------------------------------------------------------------------------

/// An API whose every request is redirected (302) to another loopback origin
/// that answers 401 to everything; the token went only to the API.
#[cfg(feature = "reqwest")]
struct Redirected {
    api: Api,
    elsewhere: Api,
}

#[cfg(feature = "reqwest")]
impl Redirected {
    async fn start() -> Self {
        let elsewhere = Api::start(ApiMode::RejectAll).await;
        let api = Api::start(ApiMode::RedirectTo(elsewhere.url("/landing"))).await;
        Redirected { api, elsewhere }
    }

    fn origin(&self) -> tower_bearer::Origin {
        tower_bearer::Origin::parse(&self.api.url("")).unwrap()
    }

    /// 20 requests reached the API once each with `tok-1`, their redirects
    /// reached the other origin without a token, and the cache fetched once
    /// and never counted the other origin's 401s.
    fn assert_twenty_once_each(&self, cache: &TokenCache) {
        assert_eq!(self.api.seen(), vec!["Bearer tok-1".to_owned(); 20]);
        assert_eq!(self.elsewhere.seen(), vec![String::new(); 20]);
        let stats = cache.stats();
        assert_eq!(
            (
                stats.fetches,
                stats.invalidations,
                stats.retries,
                stats.paced
            ),
            (1, 0, 0, 0),
            "{stats:?}"
        );
    }
}

/// Before: the middleware counted the redirect target's 401 as a rejection
/// of its token: a fetch and a replay each time, and with `only_for_origins`
/// 19 of 20 requests failed although the API never rejected a token.
#[cfg(feature = "reqwest-middleware")]
#[tokio::test]
async fn the_middleware_returns_another_origins_401_after_a_redirect() {
    use tower_bearer::reqwest::BearerAuthMiddleware;

    let servers = Redirected::start().await;
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let cache = TokenCache::new(tokens.source());
    let auth = BearerAuthMiddleware::from_cache(cache.clone()).only_for_origins([servers.origin()]);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    for _ in 0..20 {
        let response = client
            .get(servers.api.url("/v1/things"))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.url().as_str(), servers.elsewhere.url("/landing"));
    }
    servers.assert_twenty_once_each(&cache);
}

/// The same through `ReqwestService` under the layer. Before: reqwest's
/// redirect targets' answers were not marked, so each 401 from the other
/// origin replaced the token and replayed the request.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn reqwest_service_returns_another_origins_401_after_a_redirect() {
    use tower_bearer::reqwest::ReqwestService;

    let servers = Redirected::start().await;
    let tokens = TokenEndpoint::start(HOUR, Duration::ZERO).await;
    let cache = TokenCache::new(tokens.source());
    let client = ServiceBuilder::new()
        .layer(BearerAuthLayer::from_cache(cache.clone()).only_for_origins([servers.origin()]))
        .service(ReqwestService::new(reqwest::Client::new()));
    for _ in 0..20 {
        let request = Request::get(servers.api.url("/v1/things"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = client.clone().oneshot(request).await.expect("sent");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    servers.assert_twenty_once_each(&cache);
}
