//! What a real server cannot be made to do on demand, from a fake HTTP server written here:
//! garbage and truncated JSON, a stall past the timeout, a burst of 503s before success, a
//! standby's 307, a persistent 500 with a go-multierror message.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pki_tests::bao::pki_clean;
use pki_tests::{Pki, Run, dir_entries};

/// What the fake answers.
enum Answer {
    /// Status and body, served with a correct Content-Length.
    Json(u16, String),
    /// Read the request and never answer.
    Stall,
    /// 307 to this absolute URL.
    Redirect(String),
    /// 429 with `Retry-After` of this many seconds.
    Throttle(u64),
    /// 204 with this `X-Vault-Index`, as a write answers.
    Indexed(String),
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    body: String,
    /// The header lines, lowercased.
    headers: String,
}

/// A fake Vault on a loopback port. `/v1/auth/token/lookup-self` is answered for every token;
/// everything else goes to `handler` with the count of such requests so far.
struct Fake {
    addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections accepted, whatever they asked.
    connections: Arc<AtomicUsize>,
}

impl Fake {
    fn start(handler: impl Fn(usize, &Seen) -> Answer + Send + Sync + 'static) -> Self {
        Self::start_on("127.0.0.1", handler)
    }

    /// A fake on another loopback address (`127.0.0.2`: another host, as far as a URL goes).
    fn start_on(
        ip: &str,
        handler: impl Fn(usize, &Seen) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(format!("{ip}:0")).unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let count = Arc::new(AtomicUsize::new(0));
        let log = Arc::clone(&seen);
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                let handler = Arc::clone(&handler);
                let count = Arc::clone(&count);
                let log = Arc::clone(&log);
                std::thread::spawn(move || serve(stream, &*handler, &count, &log));
            }
        });
        Self {
            addr,
            seen,
            connections,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// `pki` pointed at this fake with a token and the vault backend.
    fn pki<I, S>(&self, args: I, home: &Path) -> Pki
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        pki_clean(args, home)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", "fake-token")
            .env("PKI_BACKEND", "vault")
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut first = head.lines().next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
        headers: head.to_ascii_lowercase(),
    })
}

fn serve(
    mut stream: TcpStream,
    handler: &(dyn Fn(usize, &Seen) -> Answer + Send + Sync),
    count: &AtomicUsize,
    log: &Mutex<Vec<Seen>>,
) {
    let Some(req) = read_request(&mut stream) else {
        return;
    };
    let answer = if req.path == "/v1/auth/token/lookup-self" {
        Answer::Json(
            200,
            r#"{"data":{"ttl":0,"renewable":false},"warnings":null}"#.to_owned(),
        )
    } else {
        log.lock().unwrap().push(req.clone());
        handler(count.fetch_add(1, Ordering::SeqCst), &req)
    };
    let response = match answer {
        Answer::Json(status, body) => format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
        Answer::Redirect(url) => format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {url}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        ),
        Answer::Indexed(index) => format!(
            "HTTP/1.1 204 No Content\r\nX-Vault-Index: {index}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        ),
        Answer::Throttle(secs) => format!(
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {secs}\r\nContent-Type: application/json\r\n\
             Content-Length: 13\r\nConnection: close\r\n\r\n{{\"errors\":[]}}"
        ),
        Answer::Stall => {
            std::thread::sleep(Duration::from_secs(20));
            return;
        }
    };
    let _ = stream.write_all(response.as_bytes());
}

/// `pki issue a.example.internal --role web` against `fake`, which must fail with exit 1 and
/// leave no `--out` directory; returns the run for the test's own checks of the message.
fn failed_issue(fake: &Fake) -> Run {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    let run = fake
        .pki(
            [
                "issue",
                "a.example.internal",
                "--role",
                "web",
                "--out",
                out.to_str().unwrap(),
            ],
            home.path(),
        )
        .run()
        .fails_with(&[1]);
    assert!(!out.exists());
    run
}

const KV_ANSWER: &str = r#"{"data":{"data":{"password":"pw-from-fake"},"metadata":{"version":7,"created_time":"2026-01-01T00:00:00Z"}},"warnings":null}"#;

#[test]
fn garbage_json_is_a_clear_error_and_nothing_is_written() {
    let fake =
        Fake::start(|_, _| Answer::Json(200, "<html><body>proxy error</body></html>".into()));
    let run = failed_issue(&fake);
    assert!(run.stderr.contains("not JSON"), "{run:#?}");
    assert!(
        run.stderr.contains(&fake.addr) && run.stderr.contains("pki/sign/web"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("fake-token"));
}

#[test]
fn truncated_json_is_a_clear_error_and_nothing_is_written() {
    let fake = Fake::start(|_, _| {
        Answer::Json(
            200,
            r#"{"data":{"certificate":"-----BEGIN CERTIFICATE-----\nMIIB"#.into(),
        )
    });
    let run = failed_issue(&fake);
    assert!(run.stderr.contains("truncated"), "{run:#?}");
}

#[test]
fn a_stall_past_the_timeout_fails_without_writing() {
    let fake = Fake::start(|_, _| Answer::Stall);
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("value");
    let start = Instant::now();
    let run = fake
        .pki(
            [
                "secret",
                "get",
                "app/x",
                "--field",
                "password",
                "--out",
                file.to_str().unwrap(),
            ],
            home.path(),
        )
        .env("VAULT_CLIENT_TIMEOUT", "1s")
        .run()
        .fails_with(&[1]);
    assert!(
        run.stderr
            .contains(&format!("timed out waiting for Vault at {}", fake.addr)),
        "{run:#?}"
    );
    // One timeout, not one per retry.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        dir_entries(home.path())
            .iter()
            .all(|f| f != "value" && !f.starts_with(".pki-tmp"))
    );
}

#[test]
fn a_burst_of_503s_is_retried_until_success() {
    let fake = Fake::start(|n, _| {
        if n < 3 {
            Answer::Json(
                503,
                r#"{"errors":["no active Vault instance found"]}"#.into(),
            )
        } else {
            Answer::Json(200, KV_ANSWER.into())
        }
    });
    let home = tempfile::tempdir().unwrap();
    let run = fake
        .pki(
            ["secret", "get", "app/x", "--field", "password"],
            home.path(),
        )
        .run()
        .ok();
    assert_eq!(run.stdout, "pw-from-fake");
    assert_eq!(fake.seen().len(), 4, "three 503s, then the success");
}

#[test]
fn retries_are_bounded_and_vaults_message_is_kept() {
    let fake = Fake::start(|_, _| {
        Answer::Json(
            500,
            r#"{"errors":["1 error occurred:\n\t* storage is on fire\n\n"]}"#.into(),
        )
    });
    let home = tempfile::tempdir().unwrap();
    let run = fake
        .pki(["secret", "get", "app/x"], home.path())
        .env("VAULT_MAX_RETRIES", "2")
        .run()
        .fails_with(&[1]);
    assert!(
        run.stderr.contains("HTTP 500: storage is on fire"),
        "{run:#?}"
    );
    assert_eq!(fake.seen().len(), 3, "one try and two retries");
}

/// A read that follows a write in the same process sends the write's `X-Vault-Index` and
/// asks a standby that has not caught up to forward it, instead of answering stale.
#[test]
fn a_read_after_a_write_asks_for_what_the_write_made() {
    let fake = Fake::start(|_, req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1/sys/mounts") => Answer::Json(200, r#"{"data":{}}"#.into()),
        ("POST", "/v1/sys/mounts/pki") => Answer::Indexed("INDEX-OF-THE-MOUNT".into()),
        ("GET", "/v1/sys/mounts/pki/tune") => {
            Answer::Json(200, r#"{"data":{"max_lease_ttl":315360000}}"#.into())
        }
        _ => Answer::Json(400, r#"{"errors":["the fake stops here"]}"#.into()),
    });
    let home = tempfile::tempdir().unwrap();
    let run = fake.pki(["vault", "bootstrap"], home.path()).run();
    assert_ne!(run.code, 0, "{run:#?}");
    let seen = fake.seen();
    let first_read = seen
        .iter()
        .find(|r| r.method == "GET" && r.path == "/v1/sys/mounts")
        .unwrap();
    assert!(
        !first_read.headers.contains("x-vault-index"),
        "{first_read:?}"
    );
    let tune = seen
        .iter()
        .find(|r| r.path == "/v1/sys/mounts/pki/tune")
        .unwrap_or_else(|| panic!("{seen:?}"));
    assert!(
        tune.headers.contains("x-vault-index: index-of-the-mount")
            && tune
                .headers
                .contains("x-vault-inconsistent: forward-active-node"),
        "{tune:?}"
    );
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    addr
}

#[test]
fn a_node_that_refuses_is_left_for_the_next_and_retry_after_is_honoured() {
    let fake = Fake::start(|n, _| {
        if n == 0 {
            Answer::Throttle(2)
        } else {
            Answer::Json(200, KV_ANSWER.into())
        }
    });
    let home = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let run = fake
        .pki(
            ["secret", "get", "app/x", "--field", "password"],
            home.path(),
        )
        .env("VAULT_ADDR", closed_port())
        .env("PKI_VAULT_NODES", &fake.addr)
        .run()
        .ok();
    assert_eq!(run.stdout, "pw-from-fake");
    assert_eq!(fake.seen().len(), 2, "throttled once, then served");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was not waited for: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_spent_retry_budget_says_so_with_the_last_failure() {
    let fake = Fake::start(|_, _| {
        Answer::Json(
            500,
            r#"{"errors":["local node not active but active cluster node not found"]}"#.into(),
        )
    });
    let home = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let run = fake
        .pki(["secret", "get", "app/x"], home.path())
        .env("VAULT_ADDR", closed_port())
        .env("PKI_VAULT_NODES", &fake.addr)
        .env("PKI_VAULT_RETRY_BUDGET", "2s")
        .run()
        .fails_with(&[1]);
    assert!(
        run.stderr.contains("retry budget")
            && run.stderr.contains("2 node(s)")
            && run.stderr.contains("the last failure"),
        "{run:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(
        fake.seen().len() >= 2,
        "both nodes were tried, more than once"
    );
}

#[test]
fn a_standby_redirect_is_followed_with_the_body() {
    let active = Fake::start(|_, _| {
        Answer::Json(
            200,
            r#"{"data":{"version":1,"created_time":"t"},"warnings":null}"#.into(),
        )
    });
    let target = active.addr.clone();
    let standby = Fake::start(move |_, req| Answer::Redirect(format!("{target}{}", req.path)));
    let home = tempfile::tempdir().unwrap();
    let run = standby
        .pki(
            ["--json", "secret", "put", "app/x", "password=redirected"],
            home.path(),
        )
        // The active node is a configured member of the cluster.
        .env("PKI_VAULT_NODES", &active.addr)
        .run()
        .ok();
    assert_eq!(run.json()["version"], 1);
    let seen = active.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/secret/data/app/x");
    assert!(seen[0].body.contains("redirected"), "{seen:?}");
}

/// Review finding 7: a redirect to a host that is not a configured cluster node is refused;
/// neither the token nor an AppRole login (role_id and secret_id) reaches it.
#[test]
fn finding_7_a_redirect_elsewhere_carries_neither_the_token_nor_a_login() {
    let elsewhere = Fake::start_on("127.0.0.2", |_, _| Answer::Json(200, "{}".to_owned()));
    let target = elsewhere.addr.clone();
    let redirecting = Fake::start(move |_, req| Answer::Redirect(format!("{target}{}", req.path)));
    let home = tempfile::tempdir().unwrap();
    let run = redirecting
        .pki(["secret", "put", "app/x", "password=s3cret"], home.path())
        .run()
        .fails_with(&[1]);
    assert!(
        run.stderr
            .contains("refusing to follow a redirect to http://127.0.0.2"),
        "{run:#?}"
    );
    // AppRole: the login itself is redirected.
    let run = pki_clean(["secret", "get", "app/x"], home.path())
        .env("VAULT_ADDR", &redirecting.addr)
        .env("PKI_BACKEND", "vault")
        .env("PKI_VAULT_ROLE_ID", "my-role-id")
        .env("PKI_VAULT_SECRET_ID", "my-SECRET-id")
        .run()
        .fails_with(&[1]);
    assert!(
        run.stderr.contains("refusing to follow a redirect"),
        "{run:#?}"
    );
    assert!(
        redirecting
            .seen()
            .iter()
            .any(|s| s.path == "/v1/auth/approle/login"),
        "the login went to the configured server: {:?}",
        redirecting.seen()
    );
    assert_eq!(
        elsewhere.connections.load(Ordering::SeqCst),
        0,
        "the other host was contacted: {:?}",
        elsewhere.seen()
    );
}
