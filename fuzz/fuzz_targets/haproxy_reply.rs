//! The HAProxy runtime API, through `pki_deploy::fuzzing::haproxy`: answers as read from the
//! admin socket, the path of another open transaction, the `set ssl cert` payload, and a whole
//! update replayed against scripted answers. The input is up to 16 answers separated by NUL
//! bytes (and, as text, a PEM bundle for the payload). Nothing may panic; the exchange is
//! bounded, every command is one line (an answer cannot add commands), the payload has no
//! blank line, and the update ends with a commit when it succeeds and with an abort of our
//! transaction when HAProxy refuses.

#![no_main]

use std::io;

use libfuzzer_sys::fuzz_target;
use pki_deploy::fuzzing::Outcome;
use pki_deploy::fuzzing::haproxy::{converse, one_line, other_transaction, payload, read_answer};

const PATH: &str = "/etc/haproxy/certs/web.pem";

fuzz_target!(|data: &[u8]| {
    let answers: Vec<io::Result<String>> =
        data.split(|b| *b == 0).take(16).map(read_answer).collect();
    for answer in answers.iter().flatten() {
        assert_eq!(answer.trim(), answer);
        assert!(!one_line(answer).contains('\n'));
        if let Some(other) = other_transaction(answer) {
            assert!(!other.is_empty() && !other.contains(['\n', '\'']));
        }
    }

    let pem = String::from_utf8_lossy(data);
    let payload = payload(&pem);
    assert!(payload.is_empty() || payload.ends_with('\n'));
    assert!(
        payload.lines().all(|l| !l.trim().is_empty()),
        "a blank line in the payload would end it early"
    );

    let mut script = answers.into_iter();
    let mut sent: Vec<String> = Vec::new();
    let mut send = |command: &str| {
        sent.push(command.to_owned());
        script.next().unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "no more answers",
            ))
        })
    };
    let outcome = converse(&mut send, PATH, &payload);
    let set = format!("set ssl cert {PATH} <<\n{payload}\n");
    let abort = format!("abort ssl cert {PATH}\n");
    assert!(sent.len() <= 7, "{} commands", sent.len());
    assert_eq!(sent[0], abort);
    for command in &sent {
        if *command != set {
            assert_eq!(command.matches('\n').count(), 1, "{command:?}");
            assert!(command.ends_with('\n'));
        }
    }
    match outcome {
        Outcome::Done => assert_eq!(sent.last(), Some(&format!("commit ssl cert {PATH}\n"))),
        Outcome::Refused(reply) => {
            assert_eq!(sent.last(), Some(&abort));
            assert!(!one_line(&reply).contains('\n'));
        }
        _ => {}
    }
});
