//! A raw-TCP token endpoint on 127.0.0.1 whose behaviour can be switched at any
//! time (answer, hang, trickle, huge body, close), and an address where nothing
//! listens.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the loopback token endpoint does with the next request.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// 200 with a fresh numbered token `tok-N` and this `expires_in` JSON value
    /// (raw JSON text, e.g. `3600`, `0`, `-5`, `"3600"`), or none.
    Mint { expires_in: Option<String> },
    /// Answers with exactly this status, extra headers and body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Reads the request and never answers (the connection stays open).
    Hang,
    /// Answers a valid token response one byte per second.
    Trickle,
    /// 200 with a JSON-looking body of this many bytes, streamed, with or
    /// without a `content-length` that says so.
    Huge { size: usize, declared: bool },
    /// Accepts the connection and closes it at once.
    Close,
    /// Answers with this status and the whole request (head and body) echoed
    /// back as `text/html`, like a debugging error page.
    Echo(u16),
}

impl Endpoint {
    pub fn ok() -> Self {
        Endpoint::Mint {
            expires_in: Some("3600".into()),
        }
    }

    pub fn status(status: u16) -> Self {
        Endpoint::Respond {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn json(status: u16, body: &str) -> Self {
        Endpoint::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }
}

struct TokenServerState {
    /// `false`: the listening socket is closed, so connections are refused.
    listening: tokio::sync::watch::Sender<bool>,
    /// What the accept task has done about `listening`.
    bound: tokio::sync::watch::Sender<bool>,
    mode: Mutex<Endpoint>,
    /// Requests that reached the endpoint (fully read).
    requests: AtomicUsize,
    /// Connections accepted.
    connections: AtomicUsize,
    minted: AtomicU64,
    bodies: Mutex<Vec<Bytes>>,
}

/// A token endpoint on 127.0.0.1 speaking just enough HTTP/1.1 (one request per
/// connection, `Connection: close`) to misbehave precisely.
#[derive(Clone)]
pub struct TokenServer {
    state: Arc<TokenServerState>,
    pub addr: SocketAddr,
}

impl TokenServer {
    pub async fn start(mode: Endpoint) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(TokenServerState {
            listening: tokio::sync::watch::Sender::new(true),
            bound: tokio::sync::watch::Sender::new(true),
            mode: Mutex::new(mode),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            minted: AtomicU64::new(0),
            bodies: Mutex::new(Vec::new()),
        });
        let server = TokenServer { state, addr };
        let accept = server.clone();
        tokio::spawn(async move {
            let mut listening = accept.state.listening.subscribe();
            let mut listener = Some(listener);
            loop {
                match &listener {
                    Some(l) => tokio::select! {
                        accepted = l.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            accept.state.connections.fetch_add(1, Ordering::SeqCst);
                            let conn = accept.clone();
                            tokio::spawn(async move { conn.handle(stream).await });
                        }
                        _ = listening.wait_for(|on| !*on) => {
                            listener = None;
                            accept.state.bound.send_replace(false);
                        }
                    },
                    None => {
                        if listening.wait_for(|on| *on).await.is_err() {
                            return;
                        }
                        let socket = tokio::net::TcpSocket::new_v4().unwrap();
                        socket.set_reuseaddr(true).unwrap();
                        socket
                            .bind(addr)
                            .expect("rebinding the token endpoint's port");
                        listener = Some(socket.listen(1024).unwrap());
                        accept.state.bound.send_replace(true);
                    }
                }
            }
        });
        server
    }

    /// Closes (`false`) or reopens (`true`) the listening socket: while closed,
    /// connections are refused. Takes effect once the accept task has run.
    pub async fn listen(&self, on: bool) {
        let mut bound = self.state.bound.subscribe();
        self.state.listening.send_replace(on);
        bound.wait_for(|b| *b == on).await.unwrap();
    }

    pub fn url(&self) -> String {
        format!("http://{}/oauth2/token", self.addr)
    }

    pub fn set(&self, mode: Endpoint) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Requests the endpoint has read so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// (connections, requests) once the first request was read: the server
    /// counts on a task of its own, so a test that saw its client give up
    /// lets it catch up first, then checks that nothing more came.
    pub async fn counts_after_first_request(&self) -> (usize, usize) {
        while self.requests() == 0 {
            tokio::task::yield_now().await;
        }
        (self.connections(), self.requests())
    }

    pub fn bodies(&self) -> Vec<Bytes> {
        self.state.bodies.lock().unwrap().clone()
    }

    async fn handle(&self, mut stream: TcpStream) {
        let mode = self.state.mode.lock().unwrap().clone();
        if let Endpoint::Close = mode {
            return;
        }
        let Some((head, body)) = read_request(&mut stream).await else {
            return;
        };
        self.state.requests.fetch_add(1, Ordering::SeqCst);
        self.state.bodies.lock().unwrap().push(body.clone());
        match mode {
            Endpoint::Close => {}
            Endpoint::Echo(status) => {
                let mut echo = b"<html><pre>".to_vec();
                echo.extend_from_slice(&head);
                echo.extend_from_slice(&body);
                echo.extend_from_slice(b"</pre></html>");
                let _ = stream
                    .write_all(&response_bytes(
                        status,
                        &[("content-type", "text/html")],
                        &echo,
                    ))
                    .await;
            }
            Endpoint::Mint { expires_in } => {
                let n = self.state.minted.fetch_add(1, Ordering::SeqCst) + 1;
                let body = match expires_in {
                    Some(e) => format!(
                        r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{e}}}"#
                    ),
                    None => format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer"}}"#),
                };
                let _ = stream
                    .write_all(&response_bytes(
                        200,
                        &[("content-type", "application/json")],
                        body.as_bytes(),
                    ))
                    .await;
            }
            Endpoint::Respond {
                status,
                headers,
                body,
            } => {
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let _ = stream
                    .write_all(&response_bytes(status, &headers, &body))
                    .await;
            }
            Endpoint::Hang => {
                // Keep the connection open until the client gives up.
                let mut sink = [0u8; 64];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            }
            Endpoint::Trickle => {
                let bytes = response_bytes(
                    200,
                    &[("content-type", "application/json")],
                    br#"{"access_token":"tok-trickle","token_type":"Bearer","expires_in":3600}"#,
                );
                for b in bytes {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if stream.write_all(&[b]).await.is_err() {
                        return;
                    }
                }
            }
            Endpoint::Huge { size, declared } => {
                let length = if declared {
                    format!("content-length: {size}\r\n")
                } else {
                    String::new()
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n"
                );
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if stream.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            }
        }
        let _ = stream.shutdown().await;
    }
}

/// Reads one request head and its `content-length` body.
async fn read_request(stream: &mut TcpStream) -> Option<(Bytes, Bytes)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((
        Bytes::copy_from_slice(&buf[..head_end]),
        Bytes::copy_from_slice(&buf[head_end..head_end + len]),
    ))
}

fn response_bytes(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// An address on 127.0.0.1 where nothing listens (connection refused).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}
