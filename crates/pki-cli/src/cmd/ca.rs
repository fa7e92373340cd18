//! `pki ca init`, `pki ca backup`, `pki ca restore`, `pki ca rotate-intermediate`,
//! `pki ca rotate-root`.

use anyhow::{Context, Result};
use pki::authority::offline::{self, InitOptions, KeyProtection};
use pki::clock;

use super::parse;
use crate::UsageError;
use crate::args::{
    CaBackupArgs, CaInitArgs, CaRestoreArgs, CaRotateIntermediateArgs, CaRotateRootArgs,
};
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

pub(crate) fn backup(a: CaBackupArgs, format: Format) -> Result<u8> {
    let dir = a.ca.ca_dir.as_deref().ok_or_else(|| {
        UsageError("no CA directory: give --ca-dir DIR or set PKI_CA_DIR".to_owned())
    })?;
    let manifest = offline::backup::backup(dir, &a.out, clock::now())?;
    if format.is_json() {
        output::print_json(&serde_json::json!({
            "out": a.out,
            "created": manifest.created,
            "certificates": manifest.certificates,
        }))?;
    } else {
        println!(
            "Backed up {} ({} certificates in the inventory) to {}",
            dir.display(),
            manifest.certificates,
            a.out.display()
        );
    }
    Ok(0)
}

pub(crate) fn restore(a: CaRestoreArgs, format: Format) -> Result<u8> {
    let restored = offline::backup::restore(&a.file, &a.dir)?;
    if format.is_json() {
        output::print_json(&serde_json::json!({
            "dir": a.dir,
            "created": restored.manifest.created,
            "certificates": restored.manifest.certificates,
            "root": restored.root.info().subject,
            "intermediate": restored.intermediate.info().subject,
        }))?;
    } else {
        println!(
            "Restored the CA backed up at {} into {}: {} certificates; {} signed by {}",
            restored.manifest.created,
            a.dir.display(),
            restored.manifest.certificates,
            restored.intermediate.info().subject,
            restored.root.info().subject
        );
    }
    Ok(0)
}

/// The CA directory the options name.
fn ca_dir(ca: &crate::args::CaOpts) -> Result<&std::path::Path> {
    Ok(ca.ca_dir.as_deref().ok_or_else(|| {
        UsageError("no CA directory: give --ca-dir DIR or set PKI_CA_DIR".to_owned())
    })?)
}

/// How the CA's keys are stored: one passphrase for all, as `ca init` made them.
fn protection_of(ca: &offline::OfflineCa, opts: &crate::args::CaOpts) -> Result<KeyProtection> {
    Ok(if ca.key_is_encrypted()? {
        KeyProtection::Passphrase(crate::passphrase::for_unlock(
            opts.passphrase_file.as_deref(),
        )?)
    } else {
        KeyProtection::None
    })
}

pub(crate) fn rotate_intermediate(a: CaRotateIntermediateArgs, format: Format) -> Result<u8> {
    let dir = ca_dir(&a.ca)?;
    let ca = offline::OfflineCa::open(dir)?;
    let file = a.ca.passphrase_file.as_deref();
    let protection = protection_of(&ca, &a.ca)?;
    let source = match &protection {
        KeyProtection::Passphrase(p) => offline::CaKeySource::Given(p.duplicate()),
        _ => crate::passphrase::source(file),
    };
    let root = ca
        .unlock_root(a.root_key.as_deref(), &source)
        .context("cannot unlock the root key")?;
    let new = offline::rollover::NewIntermediate::new(protection, a.ttl.0);
    let done = ca.rotate_intermediate(&root, &new, clock::now())?;
    if format.is_json() {
        output::print_json(&done)?;
    } else {
        println!("Rotated the intermediate of {}", dir.display());
        for (what, info) in [("new", &done.current), ("retired", &done.retired)] {
            println!(
                "  {what:<8} {}  serial {}  expires {}",
                info.subject,
                info.serial,
                output::time(info.not_after)
            );
        }
        println!("  kept in  {}", done.retired_to.display());
        println!(
            "Every certificate the retired intermediate signed is now due (issuer-changed) at \
             the next `pki rotate`; `pki crl` also signs a CRL with the retired one while any \
             of them is unexpired."
        );
    }
    Ok(0)
}

pub(crate) fn rotate_root(a: CaRotateRootArgs, format: Format) -> Result<u8> {
    use offline::root_rollover;
    let dir = ca_dir(&a.ca)?;
    let now = clock::now();
    let change = if a.activate {
        match root_rollover::activate_due(dir, now)? {
            Some(change) => change,
            None => {
                let why = match root_rollover::staged(dir)? {
                    Some(pair) => root_rollover::not_yet(&pair),
                    None => format!("{} has no staged root", dir.display()),
                };
                return Err(UsageError(format!("nothing activated: {why}")).into());
            }
        }
    } else {
        let ca = offline::OfflineCa::open(dir)?;
        let mut new = root_rollover::NewRoot::new(protection_of(&ca, &a.ca)?, a.overlap.0);
        new.root_ttl = a.root_ttl.0;
        new.intermediate_ttl = a.intermediate_ttl.0;
        new.root_key_out = a.root_key_out.clone();
        ca.stage_root(&new, now)?
    };
    if format.is_json() {
        output::print_json(&change)?;
        return Ok(0);
    }
    match &change.replaced {
        Some(old) => println!(
            "Activated the new root of {}: {} signs from now on (it replaces {}); the next \
             `pki rotate` reissues what the old one signed",
            dir.display(),
            change.root.subject,
            old.subject
        ),
        None => println!(
            "Staged a new root in {}/next: {} (serial {}), with {}. Trust bundles hold both \
             roots from the next `pki rotate` on; it signs from {} (activated by the first \
             `pki rotate` after that, or `pki ca rotate-root --activate`)",
            dir.display(),
            change.root.subject,
            change.root.serial,
            change.intermediate.subject,
            output::time(change.activate_at)
        ),
    }
    Ok(0)
}
