//! Redis: `CONFIG SET tls-cert-file … tls-key-file …` over the unix socket. Setting the same
//! paths makes Redis (7.0.1+) read the files again; on any error it keeps the old TLS context
//! and answers `-ERR`, which redis-cli would report with exit status 0, so the reply is read
//! here.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pki::SecretString;

use crate::error::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply line: `+OK`, `-ERR …`, or anything else (an error for our purpose).
fn reply(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// Tells Redis to load the certificate files again.
pub async fn reload(
    socket: &Path,
    password: Option<SecretString>,
    cert: &Path,
    key: &Path,
    ca: Option<&Path>,
) -> Result<()> {
    let socket: PathBuf = socket.to_path_buf();
    let mut args = vec![
        "CONFIG".to_owned(),
        "SET".to_owned(),
        "tls-cert-file".to_owned(),
        cert.display().to_string(),
        "tls-key-file".to_owned(),
        key.display().to_string(),
    ];
    if let Some(ca) = ca {
        args.push("tls-ca-cert-file".to_owned());
        args.push(ca.display().to_string());
    }
    tokio::task::spawn_blocking(move || {
        let io_err = |e: std::io::Error| Error::Io {
            what: "cannot talk to Redis at",
            path: socket.clone(),
            source: e,
        };
        let refused = |r: String| Error::ServiceRefused {
            service: format!("Redis {}", socket.display()),
            reply: r,
        };
        let stream = UnixStream::connect(&socket).map_err(io_err)?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;
        let mut writer = stream.try_clone().map_err(io_err)?;
        let mut reader = BufReader::new(stream);
        if let Some(p) = &password {
            let mut auth = zeroize::Zeroizing::new(encode(&["AUTH", p.expose()]));
            writer.write_all(&auth).map_err(io_err)?;
            zeroize::Zeroize::zeroize(&mut *auth);
            let r = reply(&mut reader).map_err(io_err)?;
            if r != "+OK" {
                // Never echo what was sent; Redis's answer carries no secret.
                return Err(refused(format!("AUTH: {r}")));
            }
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        writer.write_all(&encode(&refs)).map_err(io_err)?;
        let r = reply(&mut reader).map_err(io_err)?;
        if r == "+OK" { Ok(()) } else { Err(refused(r)) }
    })
    .await
    .map_err(|e| Error::ServiceRefused {
        service: "Redis".to_owned(),
        reply: format!("task failed: {e}"),
    })?
}

#[cfg(test)]
mod tests {
    #[test]
    fn resp_encoding() {
        assert_eq!(super::encode(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
    }
}
