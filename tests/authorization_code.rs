//! The authorization-code flow as a web app runs it, against a loopback token
//! endpoint that records every request: a pending authorization saved as
//! JSON and finished by a fresh flow, the exact parameters of the exchange
//! and of refreshes, and callbacks refused before anything is sent.

mod support;

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use support::oauth2::{form, http_client, json, serve};
use tower_bearer::oauth2::{
    AuthorizationCode, Callback, ExchangeError, PendingAuthorization, TokenEndpoint,
};
use tower_bearer::{TokenError, TokenSource};

const ISSUER: &str = "https://idp.example";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// The token requests a server received, as form fields.
type Requests = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A token endpoint answering every request with a new access token and a
/// rotated refresh token.
async fn token_endpoint() -> (TokenEndpoint, Requests) {
    let requests = Requests::default();
    let record = requests.clone();
    let addr = serve(move |_, body| {
        let mut requests = record.lock().unwrap();
        requests.push(form(&body));
        let n = requests.len();
        json(
            StatusCode::OK,
            json!({"access_token": format!("a{n}"), "token_type": "Bearer",
                   "expires_in": 3600, "refresh_token": format!("r{n}")}),
        )
    })
    .await;
    let endpoint = TokenEndpoint::builder(format!("http://{addr}/token"))
        .client_id("app")
        .client_secret("s3cr3t")
        .http_client(http_client())
        .build()
        .unwrap();
    (endpoint, requests)
}

/// The flow a web app configures at start-up, identically on every instance.
fn flow(endpoint: TokenEndpoint) -> AuthorizationCode {
    AuthorizationCode::new(format!("{ISSUER}/authorize"), endpoint)
        .unwrap()
        .redirect_uri(REDIRECT_URI)
        .scope("openid")
        .require_issuer(ISSUER)
        .resource("urn:example:api")
        .token_param("audience", "https://api.example/")
}

fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn url_param(url: &str, key: &str) -> String {
    let query = url.split_once('?').unwrap().1;
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap();
    support::oauth2::field(&fields, key).unwrap().to_owned()
}

#[tokio::test]
async fn a_saved_authorization_is_finished_by_a_fresh_flow_with_exact_parameters() {
    let (endpoint, requests) = token_endpoint().await;
    // Instance A: the login handler.
    let request = flow(endpoint.clone()).start();
    let url = request.url().to_owned();
    let saved = serde_json::to_string(request.pending()).unwrap();
    drop(request);
    assert_eq!(url_param(&url, "resource"), "urn:example:api");
    assert!(
        !url.contains("audience"),
        "token parameters stay off the URL"
    );

    // Instance B: the callback handler, with its own flow and the session's JSON.
    let pending: PendingAuthorization = serde_json::from_str(&saved).unwrap();
    let state = url_param(&url, "state");
    let callback = Callback::from_url(&format!(
        "/callback?code=c0de&state={state}&iss=https%3A%2F%2Fidp.example"
    ))
    .unwrap();
    let source = flow(endpoint).finish(&pending, &callback).await.unwrap();

    let exchange = requests.lock().unwrap()[0].clone();
    let verifier = support::oauth2::field(&exchange, "code_verifier")
        .unwrap()
        .to_owned();
    assert_eq!(
        exchange,
        pairs(&[
            ("grant_type", "authorization_code"),
            ("code", "c0de"),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
            ("resource", "urn:example:api"),
            ("audience", "https://api.example/"),
        ])
    );
    // The restored verifier is the one whose challenge instance A sent.
    assert_eq!(
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        url_param(&url, "code_challenge")
    );

    // The exchange's token first, then refreshes with the same parameters.
    assert_eq!(source.fetch().await.unwrap().secret(), "a1");
    assert_eq!(source.fetch().await.unwrap().secret(), "a2");
    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1],
        pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "r1"),
            ("resource", "urn:example:api"),
            ("audience", "https://api.example/"),
        ])
    );
}

fn exchange_error(err: &TokenError) -> &ExchangeError {
    err.cause()
        .and_then(|c| c.downcast_ref::<ExchangeError>())
        .unwrap_or_else(|| panic!("not an ExchangeError: {err:?}"))
}

/// What a refused callback's error must be.
type Expected = fn(&ExchangeError) -> bool;

#[tokio::test]
async fn callbacks_that_fail_a_check_send_nothing() {
    let (endpoint, requests) = token_endpoint().await;
    let request = flow(endpoint).start();
    let state = url_param(request.url(), "state");
    let iss = "iss=https%3A%2F%2Fidp.example";
    let cases: Vec<(String, Expected)> = vec![
        (
            format!("code=c&state={state}&iss=https%3A%2F%2Fattacker.example"),
            |e| matches!(e, ExchangeError::IssuerMismatch { returned, .. } if returned == "https://attacker.example"),
        ),
        (
            format!("code=c&state={state}"),
            |e| matches!(e, ExchangeError::MissingIssuer { expected } if expected == ISSUER),
        ),
        (format!("code=c&state=forged&{iss}"), |e| {
            matches!(e, ExchangeError::StateMismatch)
        }),
        (format!("code=c&{iss}"), |e| {
            matches!(e, ExchangeError::StateMismatch)
        }),
        (format!("state={state}&{iss}"), |e| {
            matches!(e, ExchangeError::MissingCode)
        }),
    ];
    for (query, expected) in cases {
        let callback = Callback::from_query(&query).unwrap();
        let err = request.finish(&callback).await.unwrap_err();
        assert!(err.is_permanent());
        assert!(expected(exchange_error(&err)), "{query}: {err:?}");
    }
    // Only in the fragment: refused when read, with a reason.
    let err =
        Callback::from_url(&format!("{REDIRECT_URI}#code=c&state={state}&{iss}")).unwrap_err();
    assert!(matches!(
        exchange_error(&err),
        ExchangeError::InvalidCallback(_)
    ));
    assert!(requests.lock().unwrap().is_empty());

    // The state twice, a forged copy first or last: refused when read,
    // whichever copy a lenient parser would have kept.
    for query in [
        format!("code=c&state=nope&state={state}&{iss}"),
        format!("code=c&state={state}&state=nope&{iss}"),
        format!("code=c&code=d&state={state}&{iss}"),
        format!("code=c&state={state}&{iss}&iss=https%3A%2F%2Fattacker.example"),
    ] {
        let err = Callback::from_query(&query).unwrap_err();
        assert!(
            matches!(exchange_error(&err), ExchangeError::InvalidCallback(reason) if reason.contains("more than once")),
            "{query}: {err:?}"
        );
        assert!(!err.to_string().contains(&state), "{err}");
    }
    assert!(requests.lock().unwrap().is_empty());

    // The same code with everything right goes through: one request.
    let callback = Callback::from_query(&format!("code=c&state={state}&{iss}")).unwrap();
    request.finish(&callback).await.unwrap();
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_pending_authorization_is_exchanged_once() {
    let (endpoint, requests) = token_endpoint().await;
    let flow = flow(endpoint);
    let request = flow.start();
    let state = url_param(request.url(), "state");
    let callback = Callback::from_query(&format!(
        "code=c&state={state}&iss=https%3A%2F%2Fidp.example"
    ))
    .unwrap();
    let pending = request.pending().clone();

    // A forged callback first does not use it up.
    let forged =
        Callback::from_query("code=evil&state=forged&iss=https%3A%2F%2Fidp.example").unwrap();
    let err = flow.finish(&pending, &forged).await.unwrap_err();
    assert!(matches!(exchange_error(&err), ExchangeError::StateMismatch));

    flow.finish(&pending, &callback).await.unwrap();
    // Again, through the request, a clone, and the same pending value:
    // refused before anything is sent.
    let again = [
        request.finish(&callback).await.unwrap_err(),
        flow.exchange(&pending.clone(), &callback)
            .await
            .unwrap_err(),
        flow.finish(&pending, &callback).await.unwrap_err(),
    ];
    for err in &again {
        assert!(
            matches!(exchange_error(err), ExchangeError::AlreadyExchanged),
            "{err:?}"
        );
        assert!(err.is_permanent());
    }
    assert_eq!(requests.lock().unwrap().len(), 1);

    // An exchange that failed used it up too: its code may have reached the
    // server.
    let refused = support::token_server::refused_addr().await;
    let refused = TokenEndpoint::builder(format!("http://{refused}/token"))
        .client_id("app")
        .http_client(http_client())
        .build()
        .unwrap();
    let unreachable = AuthorizationCode::new(format!("{ISSUER}/authorize"), refused)
        .unwrap()
        .require_issuer(ISSUER);
    let request = unreachable.start();
    let state = url_param(request.url(), "state");
    let callback = Callback::from_query(&format!(
        "code=c&state={state}&iss=https%3A%2F%2Fidp.example"
    ))
    .unwrap();
    assert!(request.finish(&callback).await.unwrap_err().is_transient());
    let err = request.finish(&callback).await.unwrap_err();
    assert!(matches!(
        exchange_error(&err),
        ExchangeError::AlreadyExchanged
    ));
}

#[tokio::test]
async fn an_expected_issuer_is_checked_when_sent_and_not_required() {
    let (endpoint, requests) = token_endpoint().await;
    let flow = AuthorizationCode::new(format!("{ISSUER}/authorize"), endpoint)
        .unwrap()
        .expect_issuer(ISSUER);
    let request = flow.start();
    let state = url_param(request.url(), "state");
    let err = request
        .exchange(
            &Callback::from_query(&format!(
                "code=c&state={state}&iss=https%3A%2F%2Fother.example"
            ))
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        exchange_error(&err),
        ExchangeError::IssuerMismatch { .. }
    ));
    assert!(requests.lock().unwrap().is_empty());
    // A server that does not send `iss` at all still works.
    request
        .exchange(&Callback::from_query(&format!("code=c&state={state}")).unwrap())
        .await
        .unwrap();
    assert_eq!(requests.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_authorization_finished_with_another_issuers_flow_sends_nothing() {
    // A multi-provider app picks the flow to finish with from the callback's
    // URL, which the attacker controls: the genuine response for idp.example
    // must not go to the other provider's token endpoint.
    let (idp_endpoint, idp_requests) = token_endpoint().await;
    let (other_endpoint, other_requests) = token_endpoint().await;
    let other = AuthorizationCode::new("https://other.example/authorize", other_endpoint)
        .unwrap()
        .require_issuer("https://other.example");
    let request = flow(idp_endpoint.clone()).start();
    let state = url_param(request.url(), "state");
    let genuine = Callback::from_query(&format!(
        "code=c&state={state}&iss=https%3A%2F%2Fidp.example"
    ))
    .unwrap();
    let err = other.finish(request.pending(), &genuine).await.unwrap_err();
    assert!(
        matches!(exchange_error(&err), ExchangeError::FlowMismatch { started_with, finishing_with }
            if started_with == ISSUER && finishing_with == "https://other.example"),
        "{err:?}"
    );
    assert!(other_requests.lock().unwrap().is_empty());

    // A pending authorization saved without an issuer still gets the
    // finishing flow's check.
    let bare = PendingAuthorization::new(request.state().clone())
        .with_verifier(request.verifier().unwrap().clone())
        .with_redirect_uri(REDIRECT_URI);
    let err = other.finish(&bare, &genuine).await.unwrap_err();
    assert!(
        matches!(exchange_error(&err), ExchangeError::IssuerMismatch { .. }),
        "{err:?}"
    );
    assert!(other_requests.lock().unwrap().is_empty());
    assert!(idp_requests.lock().unwrap().is_empty());

    // Finished with its own flow, it goes through.
    flow(idp_endpoint)
        .finish(request.pending(), &genuine)
        .await
        .unwrap();
    assert_eq!(idp_requests.lock().unwrap().len(), 1);
}
