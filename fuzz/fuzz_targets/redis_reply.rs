//! Redis over its unix socket, through `pki_deploy::fuzzing::redis`: RESP reply lines, the
//! AUTH + CONFIG SET exchange replayed against the input as the server's replies, and the RESP
//! encoding of commands. Nothing may panic; a reply is one bounded line; the exchange succeeds
//! only on `+OK` replies and sends CONFIG SET only after AUTH was accepted; what it sends, and
//! any command made of the input, decodes back to the same arguments.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use pki_deploy::fuzzing::Outcome;
use pki_deploy::fuzzing::redis::{encode, exchange, reply};

const MAX_REPLY: usize = 64 * 1024;
const ARGS: [&str; 6] = [
    "CONFIG",
    "SET",
    "tls-cert-file",
    "/etc/redis/tls/redis.crt",
    "tls-key-file",
    "/etc/redis/tls/redis.key",
];

fuzz_target!(|data: &[u8]| {
    let mut reader = Cursor::new(data);
    for _ in 0..1000 {
        let before = reader.position();
        let Ok(line) = reply(&mut reader) else { break };
        let read = usize::try_from(reader.position() - before).unwrap();
        assert!(read <= MAX_REPLY && line.len() < read);
        assert!(!line.contains('\n'));
    }

    for password in [None, Some("s3cret")] {
        let (outcome, sent) = exchange(data, password, &ARGS);
        let commands = decode(&sent);
        let auth = usize::from(password.is_some());
        if let Some(p) = password {
            assert_eq!(commands[0], ["AUTH", p]);
        }
        match outcome {
            Outcome::Done => {
                assert!(data.starts_with(b"+OK"));
                assert_eq!(commands.len(), auth + 1);
                assert_eq!(commands[auth], ARGS);
            }
            Outcome::Refused(r) => assert!(!r.contains('\n')),
            _ => {}
        }
        if commands.len() > auth {
            assert_eq!(commands[auth], ARGS);
        }
    }

    let text = String::from_utf8_lossy(data);
    let args: Vec<&str> = text.split('\0').take(8).collect();
    assert_eq!(decode(&encode(&args)), [args]);
});

/// Decodes RESP arrays of bulk strings, panicking on anything else.
fn decode(mut bytes: &[u8]) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    while !bytes.is_empty() {
        let count = header(&mut bytes, b'*');
        let mut args = Vec::with_capacity(count);
        for _ in 0..count {
            let len = header(&mut bytes, b'$');
            let (arg, rest) = bytes.split_at(len);
            args.push(String::from_utf8(arg.to_vec()).unwrap());
            bytes = rest
                .strip_prefix(b"\r\n")
                .expect("bulk string without CRLF");
        }
        commands.push(args);
    }
    commands
}

/// `<mark><number>\r\n` at the start of `bytes`: the number, `bytes` moved past it.
fn header(bytes: &mut &[u8], mark: u8) -> usize {
    assert_eq!(bytes.first(), Some(&mark), "expected {}", char::from(mark));
    let end = bytes.windows(2).position(|w| w == b"\r\n").unwrap();
    let n = std::str::from_utf8(&bytes[1..end])
        .unwrap()
        .parse()
        .unwrap();
    *bytes = &bytes[end + 2..];
    n
}
