//! `pki ca init`.

use anyhow::Result;
use pki::authority::offline::{self, InitOptions, KeyProtection};
use pki::{clock, duration};

use super::parse;
use crate::args::CaInitArgs;
use crate::output;

pub(crate) fn init(a: CaInitArgs, json: bool) -> Result<u8> {
    let key_algorithm = parse(&a.key)?;
    let root_ttl = duration::parse(&a.root_ttl)?;
    let intermediate_ttl = duration::parse(&a.intermediate_ttl)?;
    let protection = if a.insecure_no_passphrase {
        KeyProtection::None
    } else {
        KeyProtection::Passphrase(crate::passphrase::for_init(a.passphrase_file.as_deref())?)
    };
    let summary = offline::init(
        &a.dir,
        &InitOptions {
            name: a.name,
            key_algorithm,
            root_ttl,
            intermediate_ttl,
            permitted_dns: a.permitted_dns,
            protection,
            root_key_out: a.root_key_out,
        },
        clock::now(),
    )?;
    if json {
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
        if !summary.intermediate.permitted_dns_domains.is_empty() {
            println!(
                "  permitted    {}",
                summary.intermediate.permitted_dns_domains.join(", ")
            );
        }
        println!("  root key     {}", summary.root_key.display());
        if !summary.encrypted {
            eprintln!("warning: the CA keys are NOT encrypted (--insecure-no-passphrase)");
        }
    }
    Ok(0)
}
