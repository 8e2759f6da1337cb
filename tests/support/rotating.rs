//! The token endpoint of one refresh-token grant on 127.0.0.1, as strict as
//! oidc-provider with rotation on (INTEROP.md): every redemption rotates the
//! refresh token, and presenting a spent one revokes the whole grant. It
//! counts every presentation of every refresh token, and can hold its
//! answers (after it has rotated) until the test lets them go, or answer
//! 503 without using the refresh token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tower_bearer::oauth2::{HttpClient, RefreshTokenSource, TokenEndpoint};

use super::fleet::{eventually, json};
use super::loopback;
use super::oauth2::{field, form, plain_client};

#[derive(Default)]
struct Grant {
    /// The refresh token the grant accepts next.
    current: String,
    issued: u64,
    revoked: bool,
    /// Presentations of each refresh token.
    presented: HashMap<String, usize>,
    redemptions: usize,
    /// Answers `503 temporarily_unavailable` to this many more, unused.
    unavailable: usize,
}

/// See the [module](self) documentation.
pub struct RotatingGrant {
    runtime: Runtime,
    grant: Arc<Mutex<Grant>>,
    /// `true`: answers wait until it is `false` again.
    held: watch::Sender<bool>,
    addr: SocketAddr,
    lifetime: Duration,
}

impl RotatingGrant {
    /// A grant whose first refresh token is `rt-0` and whose access tokens
    /// live `lifetime`.
    pub fn start(lifetime: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let grant = Arc::new(Mutex::new(Grant {
            current: "rt-0".into(),
            ..Grant::default()
        }));
        let (held, _) = watch::channel(false);
        let addr = {
            let (grant, held) = (grant.clone(), held.clone());
            runtime.block_on(loopback::serve(move |req: Request<Incoming>| {
                let (grant, mut held) = (grant.clone(), held.subscribe());
                async move {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let fields = form(&body);
                    let presented = field(&fields, "refresh_token").unwrap_or("").to_owned();
                    let answer = redeem(&grant, &presented, lifetime);
                    // Rotated (or refused) already: only the answer waits.
                    let _ = held.wait_for(|held| !held).await;
                    answer
                }
            }))
        };
        Self {
            runtime,
            grant,
            held,
            addr,
            lifetime,
        }
    }

    /// The refresh token the fleet starts from.
    pub fn seed(&self) -> &'static str {
        "rt-0"
    }

    pub fn endpoint(&self) -> TokenEndpoint {
        TokenEndpoint::builder(format!("http://{}/token", self.addr))
            .client_id("app")
            .client_secret("app-secret")
            .http_client(HttpClient::new(plain_client()))
            .build()
            .unwrap()
    }

    /// A source seeded with the grant's first refresh token; `rotations`
    /// gets every refresh token its `on_rotate` is told.
    pub fn source(&self, rotations: &Arc<Mutex<Vec<String>>>) -> RefreshTokenSource {
        let rotations = rotations.clone();
        RefreshTokenSource::new(self.endpoint(), self.seed())
            .on_rotate(move |new| rotations.lock().unwrap().push(new.expose().to_owned()))
    }

    /// Every redemption from now on rotates at once, but answers only after
    /// [`release`](Self::release).
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// The next `n` redemptions are answered 503, their refresh token unused.
    pub fn unavailable(&self, n: usize) {
        self.grant.lock().unwrap().unavailable = n;
    }

    pub fn redemptions(&self) -> usize {
        self.grant.lock().unwrap().redemptions
    }

    /// Waits until the endpoint has received `n` redemptions.
    pub fn wait_redemptions(&self, n: usize) {
        eventually(&format!("{n} redemptions"), || self.redemptions() >= n);
    }

    /// Whether a spent refresh token was presented (and the grant revoked).
    pub fn revoked(&self) -> bool {
        self.grant.lock().unwrap().revoked
    }

    /// The most times any refresh token was presented.
    pub fn most_presentations(&self) -> usize {
        let grant = self.grant.lock().unwrap();
        grant.presented.values().copied().max().unwrap_or(0)
    }

    /// The refresh token the grant accepts next.
    pub fn current(&self) -> String {
        self.grant.lock().unwrap().current.clone()
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Stops serving (the test is over).
    pub fn shutdown(self) {
        self.release();
        self.runtime.shutdown_background();
    }
}

fn redeem(grant: &Mutex<Grant>, presented: &str, lifetime: Duration) -> Response<Full<Bytes>> {
    let mut grant = grant.lock().unwrap();
    grant.redemptions += 1;
    if grant.unavailable > 0 {
        grant.unavailable -= 1;
        return json(503, r#"{"error":"temporarily_unavailable"}"#.into());
    }
    *grant.presented.entry(presented.to_owned()).or_default() += 1;
    if grant.revoked || presented != grant.current {
        // A spent (or unknown) refresh token: the whole grant goes.
        grant.revoked = true;
        return json(
            400,
            r#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#.into(),
        );
    }
    grant.issued += 1;
    let n = grant.issued;
    grant.current = format!("rt-{n}");
    json(
        200,
        format!(
            r#"{{"access_token":"at-{n}","token_type":"Bearer","expires_in":{},"refresh_token":"rt-{n}"}}"#,
            lifetime.as_secs()
        ),
    )
}
