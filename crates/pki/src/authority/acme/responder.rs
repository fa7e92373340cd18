//! The built-in http-01 responder: a plain HTTP listener, up only while an order is being
//! validated, that answers `GET /.well-known/acme-challenge/TOKEN` with the key authorization
//! and everything else with 404. HAProxy (or any proxy on port 80) routes the challenge path
//! to it. Every connection is bounded: the request head in size and time, the connections at
//! once in number.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::error::{Error, IoOp, Result};

/// The path prefix of http-01 challenges (RFC 8555 §8.3).
pub(crate) const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";
/// Largest request head read.
const MAX_HEAD: usize = 8 << 10;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (a validation makes a few, from a few vantage points).
const MAX_CONNECTIONS: usize = 64;

/// Tokens and their key authorizations.
type Answers = Arc<Mutex<HashMap<String, String>>>;

/// A running responder; it stops when dropped.
#[derive(Debug)]
pub(crate) struct Responder {
    answers: Answers,
    task: JoinHandle<()>,
}

impl Responder {
    /// Listens on `addr`.
    pub(crate) async fn start(addr: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind(addr).await.map_err(|e| Error::Io {
            op: IoOp::Listen,
            path: addr.to_string().into(),
            source: e,
        })?;
        let answers: Answers = Arc::default();
        let task = tokio::spawn(serve(listener, answers.clone()));
        Ok(Self { answers, task })
    }

    /// Answers `token` with `key_authorization` from now on.
    pub(crate) fn publish(&self, token: &str, key_authorization: &str) {
        if let Ok(mut a) = self.answers.lock() {
            a.insert(token.to_owned(), key_authorization.to_owned());
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, answers: Answers) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Over the limit: the connection is closed unanswered.
            continue;
        };
        let answers = answers.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(HEAD_TIMEOUT, answer(stream, &answers)).await;
            drop(slot);
        });
    }
}

async fn answer(mut stream: TcpStream, answers: &Answers) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let found = target
        .strip_prefix(CHALLENGE_PATH)
        .filter(|_| method == "GET")
        .and_then(|token| answers.lock().ok()?.get(token).cloned());
    let reply = match found {
        Some(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
        None => {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
        }
    };
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut out = String::new();
        // A request cut off may end in a reset: what was read is the answer.
        if s.write_all(request.as_bytes()).await.is_ok() {
            let _ = s.read_to_string(&mut out).await;
        }
        out
    }

    #[tokio::test]
    async fn answers_published_tokens_only() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let r = Responder::start(addr).await.unwrap();
        r.publish("tok", "tok.thumb");
        let ok = get(
            addr,
            "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("\r\n\r\ntok.thumb"),
            "{ok}"
        );
        for bad in [
            "GET /.well-known/acme-challenge/other HTTP/1.1\r\n\r\n",
            "POST /.well-known/acme-challenge/tok HTTP/1.1\r\n\r\n",
            "GET /index.html HTTP/1.1\r\n\r\n",
        ] {
            assert!(get(addr, bad).await.starts_with("HTTP/1.1 404"), "{bad}");
        }
        // A head that never ends is cut off at the size limit.
        let huge = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD * 2));
        assert_eq!(get(addr, &huge).await, "");
        drop(r);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "stopped when dropped"
        );
    }
}
