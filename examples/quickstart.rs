//! The main demo: a token endpoint and a protected API on 127.0.0.1, and a
//! hyper-util client wrapped in `BearerAuthLayer`.
//!
//! It sends concurrent requests on a cold cache, then keeps a steady load
//! across several token expiries, then has the server revoke the token, and
//! prints what happened: requests, token fetches, waits and retries.
//!
//! ```text
//! cargo run --example quickstart
//! ```

#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::loopback::serve;
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::cache::CacheStats;
use tower_bearer::oauth2::{ClientCredentials, TokenEndpoint};
use tower_bearer::BearerAuthLayer;

const TOKEN_LIFETIME: Duration = Duration::from_secs(2);
const TOKEN_LATENCY: Duration = Duration::from_millis(50);

#[tokio::main]
async fn main() {
    let idp = Arc::new(Idp::default());
    let token_url = format!(
        "http://{}/oauth2/token",
        serve_token_endpoint(Arc::clone(&idp)).await
    );
    let api_addr = serve_api(Arc::clone(&idp)).await;
    println!(
        "token endpoint {token_url}, API http://{api_addr}/ (tokens live {TOKEN_LIFETIME:?})\n"
    );

    // The part a user writes: an OAuth2 client-credentials source and the
    // layer around their HTTP client.
    let endpoint = TokenEndpoint::builder(token_url)
        .client_id("quickstart")
        .client_secret("quickstart-secret")
        .build()
        .expect("a loopback token endpoint is allowed over http");
    let layer = BearerAuthLayer::new(ClientCredentials::new(endpoint).scope("api/access"));
    let cache = layer.cache().clone();
    let http = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let client = ServiceBuilder::new().layer(layer).service(http);

    let send = move |path: &'static str| {
        let client = client.clone();
        async move {
            let req = Request::get(format!("http://{api_addr}{path}"))
                .header("user-agent", "tower-bearer-quickstart")
                .body(Full::<Bytes>::default())
                .unwrap();
            client.oneshot(req).await.map(|res| res.status())
        }
    };
    let mut report = Report::default();

    // 1. Cold start: 1,000 concurrent requests, no token yet.
    let before = (cache.stats(), idp.minted(), idp.api_requests());
    let calls: Vec<_> = (0..1000).map(|_| tokio::spawn(send("/cold"))).collect();
    let ok = count_ok(calls).await;
    report.row(
        "1,000 concurrent requests, cold cache",
        ok,
        &before,
        &cache,
        &idp,
    );

    // 2. Steady load across token expiries: refreshed ahead, nobody waits.
    let before = (cache.stats(), idp.minted(), idp.api_requests());
    let until = Instant::now() + Duration::from_secs(5);
    let workers: Vec<_> = (0..50)
        .map(|_| {
            let send = send.clone();
            tokio::spawn(async move {
                let mut ok = 0;
                while Instant::now() < until {
                    if send("/steady").await.is_ok_and(|s| s == StatusCode::OK) {
                        ok += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for worker in workers {
        ok += worker.await.unwrap();
    }
    report.row(
        "50 workers for 5 s (2.5 token lifetimes)",
        ok,
        &before,
        &cache,
        &idp,
    );

    // 3. The server revokes the current token: 500 in-flight requests are
    //    rejected with it, one refresh, each request replayed once.
    let before = (cache.stats(), idp.minted(), idp.api_requests());
    idp.revoke_all();
    let calls: Vec<_> = (0..500).map(|_| tokio::spawn(send("/revoked"))).collect();
    let ok = count_ok(calls).await;
    report.row(
        "500 concurrent requests, token revoked",
        ok,
        &before,
        &cache,
        &idp,
    );

    report.print();
    let total = cache.stats();
    println!(
        "\nTotal: {} token fetches ({} ahead of expiry), {} callers waited for a fetch, {} requests retried once.",
        total.fetches, total.refreshes_ahead, total.waits, total.retries
    );
}

async fn count_ok(
    calls: Vec<
        tokio::task::JoinHandle<
            Result<StatusCode, tower_bearer::BearerAuthError<hyper_util::client::legacy::Error>>,
        >,
    >,
) -> usize {
    let mut ok = 0;
    for call in calls {
        if call.await.unwrap().is_ok_and(|s| s == StatusCode::OK) {
            ok += 1;
        }
    }
    ok
}

#[derive(Default)]
struct Report {
    rows: Vec<[String; 7]>,
}

impl Report {
    fn row(
        &mut self,
        phase: &str,
        ok: usize,
        before: &(CacheStats, usize, usize),
        cache: &tower_bearer::TokenCache,
        idp: &Idp,
    ) {
        let (stats, minted, requests) = before;
        let now = cache.stats();
        self.rows.push([
            phase.to_owned(),
            (idp.api_requests() - requests).to_string(),
            ok.to_string(),
            (idp.minted() - minted).to_string(),
            (now.refreshes_ahead - stats.refreshes_ahead).to_string(),
            (now.waits - stats.waits).to_string(),
            (now.retries - stats.retries).to_string(),
        ]);
    }

    fn print(&self) {
        let header = [
            "phase",
            "API requests",
            "200 OK",
            "token fetches",
            "ahead of expiry",
            "waited",
            "retried",
        ];
        let widths: Vec<usize> = (0..7)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].len())
                    .chain([header[i].len()])
                    .max()
                    .unwrap()
            })
            .collect();
        let line = |cells: [&str; 7]| {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i == 0 {
                        format!("{c:<w$}", w = widths[i])
                    } else {
                        format!("{c:>w$}", w = widths[i])
                    }
                })
                .collect();
            println!("{}", parts.join(" | "));
        };
        line(header);
        println!(
            "{}",
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("-|-")
        );
        for row in &self.rows {
            line([
                &row[0], &row[1], &row[2], &row[3], &row[4], &row[5], &row[6],
            ]);
        }
    }
}

/// The identity provider's state, shared by the token endpoint and the API.
#[derive(Default)]
struct Idp {
    minted: AtomicUsize,
    api_requests: AtomicUsize,
    valid: Mutex<HashMap<String, Instant>>,
}

impl Idp {
    fn minted(&self) -> usize {
        self.minted.load(Ordering::SeqCst)
    }

    fn api_requests(&self) -> usize {
        self.api_requests.load(Ordering::SeqCst)
    }

    fn revoke_all(&self) {
        self.valid.lock().unwrap().clear();
    }
}

async fn serve_token_endpoint(idp: Arc<Idp>) -> SocketAddr {
    serve(move |req: Request<Incoming>| {
        let idp = Arc::clone(&idp);
        async move {
            // Client credentials with HTTP Basic authentication, as configured above.
            let basic = req
                .headers()
                .get("authorization")
                .is_some_and(|v| v.as_bytes().starts_with(b"Basic "));
            let form = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if !basic || !form.starts_with(b"grant_type=client_credentials") {
                return Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(Full::new(Bytes::from_static(
                        br#"{"error":"invalid_request"}"#,
                    )))
                    .unwrap();
            }
            tokio::time::sleep(TOKEN_LATENCY).await;
            let n = idp.minted.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("token-{n}");
            idp.valid
                .lock()
                .unwrap()
                .insert(token.clone(), Instant::now() + TOKEN_LIFETIME);
            let body = format!(
                r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                TOKEN_LIFETIME.as_secs()
            );
            Response::builder()
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        }
    })
    .await
}

async fn serve_api(idp: Arc<Idp>) -> SocketAddr {
    serve(move |req: Request<Incoming>| {
        let idp = Arc::clone(&idp);
        async move {
            idp.api_requests.fetch_add(1, Ordering::SeqCst);
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let valid = token.is_some_and(|t| {
                idp.valid
                    .lock()
                    .unwrap()
                    .get(t)
                    .is_some_and(|exp| Instant::now() < *exp)
            });
            let (status, body) = if valid {
                (StatusCode::OK, "hello")
            } else {
                (StatusCode::UNAUTHORIZED, "")
            };
            let mut res = Response::builder().status(status);
            if !valid {
                res = res.header("www-authenticate", r#"Bearer error="invalid_token""#);
            }
            res.body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap()
        }
    })
    .await
}
