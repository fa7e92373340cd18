//! `pki ca init`.

use anyhow::Result;
use pki::authority::offline::{self, InitOptions, KeyProtection};
use pki::clock;

use super::parse;
use crate::args::CaInitArgs;
use crate::output::{self, Format};

pub(crate) fn init(a: CaInitArgs, format: Format) -> Result<u8> {
    let protection = if a.insecure_no_passphrase {
        KeyProtection::None
    } else {
        KeyProtection::Passphrase(crate::passphrase::for_init(a.passphrase_file.as_deref())?)
    };
    let mut options = InitOptions::new(protection);
    options.name = a.name;
    options.key_algorithm = parse(&a.key)?;
    options.root_ttl = a.root_ttl.0;
    options.intermediate_ttl = a.intermediate_ttl.0;
    options.permitted_dns = a.permitted_dns;
    options.permitted_ip = a.permitted_ip;
    if a.allow_wildcards {
        options.wildcards = pki::request::Wildcards::Allowed;
    }
    options.root_key_out = a.root_key_out;
    let summary = offline::init(&a.dir, &options, clock::now())?;
    if format.is_json() {
        output::print_json(&summary)?;
    } else {
        println!("Created CA in {}", summary.dir.display());
        for (what, info) in [
            ("root", &summary.root),
            ("intermediate", &summary.intermediate),
        ] {
            println!(
                "  {what:<13} {}  serial {}  expires {}",
                info.subject,
                info.serial,
                output::time(info.not_after)
            );
        }
        if let Some(line) = output::constraints(&summary.intermediate.constraints) {
            println!("  constraints  {line}");
        }
        println!("  root key     {}", summary.root_key.display());
        if !summary.encrypted {
            eprintln!("warning: the CA keys are NOT encrypted (--insecure-no-passphrase)");
        }
    }
    Ok(0)
}
