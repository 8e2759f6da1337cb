//! The web app: `/login` sends the user to the authorization server,
//! `/callback` finishes the flow, `/me` calls the API with that user's token.
//!
//! What a session keeps lives in a [`SessionStore`] outside the app (Redis,
//! a database, an encrypted cookie in production), as strings: the pending
//! authorization as JSON while the user is away, then the refresh token.
//! The users' token sources live in one `KeyedTokenCache` in the instance's
//! memory, keyed by session: bounded (least recently used and idle sessions
//! go), one gate towards the token endpoint, stats per session. The login
//! callback `insert`s the user's source; for a signed-in session the
//! instance does not hold (it restarted, the session was served elsewhere
//! before, or it was dropped), the cache's factory builds it again from the
//! stored refresh token. The API client is built once, at start-up: the
//! layer takes each request's token from its session's entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};
use tower_bearer::classify::DefaultClassifier;
use tower_bearer::keyed::{KeyedBy, KeyedTokenCache, SourceError};
use tower_bearer::oauth2::{
    AuthorizationCode, Callback, Discovery, HttpClient, PendingAuthorization, RefreshTokenSource,
    TokenEndpoint,
};
use tower_bearer::replay::CloneBody;
use tower_bearer::{BearerAuth, BearerAuthError, BearerAuthLayer, BoxError, TokenError};

use super::fixture::{cookie, CLIENT_ID, CLIENT_SECRET};

/// The app's session cookie.
const SESSION_COOKIE: &str = "sid";

type HttpImpl = Client<HttpConnector, Full<Bytes>>;

/// A session's id, the key of its user's token source. It is a credential:
/// never logged, and the cache's labels name the session by number.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SessionId(Arc<str>);

/// Reads the session a request to the API is made for.
type SessionOf = fn(&Request<Full<Bytes>>) -> Option<SessionId>;

/// The API client, built once: each request goes out with the token of the
/// session in its extensions.
type Api = BearerAuth<HttpImpl, CloneBody, DefaultClassifier, KeyedBy<SessionId, SessionOf>>;

/// What a session keeps between requests, across restarts and instances.
#[derive(Default, Clone)]
struct StoredSession {
    /// How the log names the session (its id is a credential: never logged).
    number: usize,
    /// The authorization in progress, as JSON, until its callback.
    pending: Option<String>,
    /// The refresh token of a signed-in session, kept current on rotation.
    /// (Encrypt it at rest in production: it is a long-lived credential.)
    refresh_token: Option<String>,
}

/// Sessions by id, shared by every instance of the app. Holds only what a
/// real store could hold: strings.
#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, StoredSession>>,
}

impl SessionStore {
    fn update(&self, sid: &str, change: impl FnOnce(&mut StoredSession)) {
        let mut sessions = self.sessions.lock().unwrap();
        let next = sessions.len() + 1;
        let session = sessions
            .entry(sid.to_owned())
            .or_insert_with(|| StoredSession {
                number: next,
                ..StoredSession::default()
            });
        change(session);
    }

    fn get(&self, sid: &str) -> StoredSession {
        self.sessions
            .lock()
            .unwrap()
            .get(sid)
            .cloned()
            .unwrap_or_default()
    }
}

/// What the app did, one line per event, for the example's report.
pub type Log = Arc<Mutex<Vec<String>>>;

/// One running instance of the web app.
pub struct WebApp {
    instance: &'static str,
    flow: AuthorizationCode,
    api_url: String,
    store: Arc<SessionStore>,
    /// Each signed-in session's token source, in this instance's memory.
    tokens: KeyedTokenCache<SessionId>,
    api: Api,
    log: Log,
}

impl WebApp {
    /// An instance configured from the issuer's metadata alone (plus the
    /// client's credentials and redirect URI), as each one is at start-up.
    pub async fn start(
        instance: &'static str,
        issuer: &str,
        redirect_uri: &str,
        api_url: &str,
        store: Arc<SessionStore>,
        log: Log,
    ) -> Result<Arc<Self>, BoxError> {
        let http: HttpImpl = Client::builder(TokioExecutor::new()).build_http();
        let metadata = Discovery::new(issuer)
            // Against a real https:// issuer, leave this out: the default
            // client speaks TLS.
            .http_client(HttpClient::new(http.clone()))
            .fetch()
            .await?;
        let endpoint = metadata
            .token_endpoint_builder()
            .client_id(CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .build()?;
        let flow = metadata
            .authorization_code(endpoint)?
            .redirect_uri(redirect_uri)
            .scope("profile");
        log.lock().unwrap().push(format!(
            "{instance}: started; discovered {} (client auth {:?}, iss required: {})",
            metadata.token_endpoint(),
            metadata.client_auth(),
            metadata.authorization_response_iss_parameter_supported()
        ));
        let tokens = session_tokens(instance, flow.endpoint(), &store, &log);
        let session_of: SessionOf = |request| request.extensions().get::<SessionId>().cloned();
        let api = BearerAuthLayer::keyed(tokens.clone(), session_of).layer(http);
        Ok(Arc::new(Self {
            instance,
            flow,
            api_url: api_url.to_owned(),
            store,
            tokens,
            api,
            log,
        }))
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/login", get(login))
            .route("/callback", get(callback))
            .route("/me", get(me))
            .with_state(self)
    }

    fn note(&self, sid: &str, what: impl std::fmt::Display) {
        note(self.instance, &self.store, &self.log, sid, what);
    }
}

/// The sessions' token sources: at most 10,000 sessions, each dropped after
/// 8 hours unused. A session signed in elsewhere (or before a restart, or
/// dropped) gets its source again from the stored refresh token; one not
/// signed in gets a typed error (the handler looks first, so this is a
/// sign-out in between) and the user is sent to log in.
fn session_tokens(
    instance: &'static str,
    endpoint: &TokenEndpoint,
    store: &Arc<SessionStore>,
    log: &Log,
) -> KeyedTokenCache<SessionId> {
    let (endpoint, factory_store, log) = (endpoint.clone(), store.clone(), log.clone());
    let label_store = store.clone();
    KeyedTokenCache::try_builder(move |sid: &SessionId| {
        let Some(refresh_token) = factory_store.get(&sid.0).refresh_token else {
            return Err(TokenError::permanent("the session is not signed in"));
        };
        note(
            instance,
            &factory_store,
            &log,
            &sid.0,
            "no token source in memory: rebuilt from the stored refresh token",
        );
        Ok(RefreshTokenSource::new(endpoint.clone(), refresh_token)
            .on_rotate(keep_rotated(&factory_store, &sid.0)))
    })
    .max_keys(10_000)
    .evict_idle_after(Duration::from_secs(8 * 3600))
    // Tracing names a session by its number, never by its id.
    .label(move |sid| format!("session {}", label_store.get(&sid.0).number))
    .build()
}

/// Logs what happened to a session, named by its number.
fn note(instance: &str, store: &SessionStore, log: &Log, sid: &str, what: impl std::fmt::Display) {
    let number = store.get(sid).number;
    log.lock()
        .unwrap()
        .push(format!("{instance}: session {number}: {what}"));
}

/// Stores each new refresh token: the old one is dead once rotated.
fn keep_rotated(
    store: &Arc<SessionStore>,
    sid: &str,
) -> impl Fn(&tower_bearer::Secret) + Send + Sync + 'static {
    let (store, sid) = (store.clone(), sid.to_owned());
    move |new| store.update(&sid, |s| s.refresh_token = Some(new.expose().to_owned()))
}

/// `true` if the request was not sent because the session has no token
/// source: it signed out since the handler looked.
fn not_signed_in(err: &BearerAuthError<hyper_util::client::legacy::Error>) -> bool {
    err.token_error()
        .and_then(TokenError::cause)
        .is_some_and(|cause| cause.is::<SourceError>())
}

fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random number generator");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bad_request(what: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, what.to_string()).into_response()
}

/// Starts a sign-in: keeps the pending authorization in the session, sends
/// the user to the authorization server.
async fn login(State(app): State<Arc<WebApp>>, headers: HeaderMap) -> Response {
    let sid = cookie(&headers, SESSION_COOKIE).unwrap_or_else(new_session_id);
    let request = app.flow.start();
    let pending = match serde_json::to_string(request.pending()) {
        Ok(json) => json,
        Err(err) => return bad_request(err),
    };
    app.store.update(&sid, |s| s.pending = Some(pending));
    // `Debug` of the pending authorization shows no secret.
    app.note(
        &sid,
        format_args!("sign-in started, saved {:?}", request.pending()),
    );
    (
        [(
            SET_COOKIE,
            format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"),
        )],
        Redirect::to(request.url()),
    )
        .into_response()
}

/// Finishes the sign-in the session started, on whichever instance the
/// user comes back to: the saved state, PKCE verifier, redirect URI and
/// issuer check come from the session store.
async fn callback(
    State(app): State<Arc<WebApp>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(sid) = cookie(&headers, SESSION_COOKIE) else {
        return bad_request("no session");
    };
    // One use: a failed callback ends this sign-in attempt.
    let mut saved = None;
    app.store.update(&sid, |s| saved = s.pending.take());
    let Some(saved) = saved else {
        return bad_request("no sign-in in progress");
    };
    let pending: PendingAuthorization = match serde_json::from_str(&saved) {
        Ok(pending) => pending,
        Err(err) => return bad_request(err),
    };
    let callback = match Callback::from_query(query.as_deref().unwrap_or("")) {
        Ok(callback) => callback,
        Err(err) => return bad_request(err),
    };
    let source = match app.flow.finish(&pending, &callback).await {
        Ok(source) => source.on_rotate(keep_rotated(&app.store, &sid)),
        Err(err) => {
            app.note(&sid, format_args!("callback refused: {err}"));
            return bad_request(err);
        }
    };
    let refresh_token = source.refresh_token().await.expose().to_owned();
    app.store
        .update(&sid, |s| s.refresh_token = Some(refresh_token));
    // The user's source joins the instance's others: bounded, evicted when
    // unused, behind one gate. Signing in again replaces it.
    app.tokens.insert(SessionId(sid.as_str().into()), source);
    app.note(&sid, "signed in; token source kept for the session");
    Redirect::to("/me").into_response()
}

/// Calls the API through the layer, with this session's user's token.
async fn me(State(app): State<Arc<WebApp>>, headers: HeaderMap) -> Response {
    let Some(sid) = cookie(&headers, SESSION_COOKIE) else {
        return Redirect::to("/login").into_response();
    };
    // Not signed in: to the login, without asking the cache, whose factory
    // would remember the failure for a while (and keep refusing the session
    // here for that while, should it sign in on another instance).
    if app.store.get(&sid).refresh_token.is_none() {
        return Redirect::to("/login").into_response();
    }
    let session = SessionId(sid.as_str().into());
    let before = app.tokens.stats_for(&session).unwrap_or_default();
    let mut request = Request::get(&app.api_url).body(Full::default()).unwrap();
    request.extensions_mut().insert(session.clone());
    let response = match app.api.clone().oneshot(request).await {
        Ok(response) => response,
        Err(err) if not_signed_in(&err) => return Redirect::to("/login").into_response(),
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let after = app.tokens.stats_for(&session).unwrap_or_default();
    app.note(
        &sid,
        format_args!(
            "/me: API answered {status}; token source fetches {}, requests replayed {}",
            after.fetches - before.fetches,
            after.retries - before.retries
        ),
    );
    (status, body).into_response()
}
