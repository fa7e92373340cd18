//! The offline CA's inventory: every issued certificate in an embedded SQLite database.
//!
//! The database runs in WAL mode with `synchronous = FULL` (every commit is on disk before
//! `pki` reports it) and a busy timeout, so several `pki`
//! processes can issue into the same CA directory at once: writes are serialised by SQLite, the
//! serial is the primary key (a collision is detected, never stored twice), and a crash loses at
//! most the transaction in flight.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration as StdDuration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;
use time::OffsetDateTime;

use crate::cert::{Certificate, Serial};
use crate::error::{Error, Result};
use crate::key::KeyAlgorithm;
use crate::profile::Profile;

use super::RevocationReason;
use crate::request::Wildcards;

const SCHEMA_VERSION: i64 = 1;
const BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(30);

const SCHEMA: &str = "
-- Clustered by expiry: listing in expiry order is a plain scan, and expiry windows are ranges.
CREATE TABLE certificates (
    not_after         INTEGER NOT NULL,
    serial            TEXT NOT NULL,
    common_name       TEXT NOT NULL,
    names             TEXT NOT NULL,
    profile           TEXT NOT NULL,
    key_algorithm     TEXT NOT NULL,
    not_before        INTEGER NOT NULL,
    issued_at         INTEGER NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('valid', 'revoked')),
    revoked_at        INTEGER,
    revocation_reason TEXT,
    fingerprint       TEXT NOT NULL,
    PRIMARY KEY (not_after, serial)
) STRICT, WITHOUT ROWID;
-- Serials are unique per issuer (RFC 5280): a collision is refused here, never stored.
CREATE UNIQUE INDEX certificates_serial ON certificates (serial);
-- The DER lives apart so that listing and CRL building scan small rows only.
CREATE TABLE certificate_der (
    serial TEXT PRIMARY KEY,
    der    BLOB NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
INSERT INTO counters (name, value) VALUES ('crl_number', 0);
";

/// A certificate's status in the inventory, as of a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Status {
    /// Not revoked and not expired.
    Valid,
    /// Revoked.
    Revoked,
    /// Past its NotAfter (and not revoked).
    Expired,
}

impl Status {
    /// The status as a lowercase word.
    pub fn name(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

impl FromStr for Status {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "valid" => Ok(Self::Valid),
            "revoked" => Ok(Self::Revoked),
            "expired" => Ok(Self::Expired),
            _ => Err(Error::InvalidArgument {
                what: "status",
                value: s.to_owned(),
                expected: "valid, revoked or expired",
            }),
        }
    }
}

/// One inventory row, without the PEM.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Record {
    /// Serial, hex.
    pub serial: String,
    /// Subject common name.
    pub common_name: String,
    /// Subject alternative names as `kind:value`.
    pub names: Vec<String>,
    /// Profile (unknown for certificates the tool did not issue).
    pub profile: Option<Profile>,
    /// Key algorithm (unknown when it is not one this tool issues).
    pub key_algorithm: Option<KeyAlgorithm>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// When it was issued.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// Status at the time of the query.
    pub status: Status,
    /// Revocation time, if revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// Revocation reason, if revoked.
    pub revocation_reason: Option<RevocationReason>,
    /// SHA-256 fingerprint.
    pub sha256_fingerprint: String,
}

/// How a certificate recorded by [`Inventory::insert`] was asked for, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Issued {
    /// The profile requested.
    pub profile: Profile,
    /// The algorithm of the subject's key.
    pub key_algorithm: KeyAlgorithm,
    /// When it was issued.
    pub at: OffsetDateTime,
}

impl Issued {
    /// A certificate of `profile` for a key of `key_algorithm`, issued `at`.
    pub fn new(profile: Profile, key_algorithm: KeyAlgorithm, at: OffsetDateTime) -> Self {
        Self {
            profile,
            key_algorithm,
            at,
        }
    }
}

/// Filters for [`Inventory::list`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only certificates with this status.
    pub status: Option<Status>,
    /// Only valid certificates expiring before this time.
    pub expiring_before: Option<OffsetDateTime>,
}

/// A revoked entry for a CRL.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RevokedEntry {
    /// Serial.
    pub serial: Serial,
    /// Revocation time.
    pub revoked_at: OffsetDateTime,
    /// Reason.
    pub reason: RevocationReason,
}

/// What [`Inventory::revoke`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
// A revocation either happens now or happened before: there is no third outcome.
#[allow(clippy::exhaustive_enums)]
pub enum RevokeOutcome {
    /// Newly revoked.
    Revoked,
    /// It was already revoked at this time, for this reason; nothing changed.
    AlreadyRevoked(OffsetDateTime, RevocationReason),
}

/// The inventory database.
pub struct Inventory {
    conn: Connection,
    path: PathBuf,
}

/// At close, the WAL is checkpointed and emptied once it is larger than this: every `pki`
/// run is a short process, and the next one reads the WAL whole when it opens the database.
/// Below it, a checkpoint (a sync of the database, then of the emptied WAL, then of the new
/// WAL header at the next commit) costs more than reading a few hundred kilobytes.
const CHECKPOINT_AT: u64 = 512 << 10;

impl Drop for Inventory {
    fn drop(&mut self) {
        // Best effort, and no waiting: another process busy with the database will checkpoint
        // it, and nothing is lost either way, as every commit is already in the WAL.
        let wal = std::fs::metadata(suffixed(&self.path, "-wal")).map_or(0, |m| m.len());
        if wal <= CHECKPOINT_AT
            || !self.conn.is_autocommit()
            || self.conn.busy_timeout(StdDuration::ZERO).is_err()
        {
            return;
        }
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("path", &self.path)
            .finish()
    }
}

/// `path` with `suffix` appended to its file name (SQLite's `-wal` and `-shm`).
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Gives a file mode 0600 unless group and others already have no access.
fn private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e| Error::Io {
        op: crate::error::IoOp::Chmod,
        path: path.to_path_buf(),
        source: e,
    };
    let mode = std::fs::symlink_metadata(path)
        .map_err(io)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(())
}

/// Creates an empty file owner-only (0600 whatever the umask); fails if it exists.
fn create_private(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::Io {
            op: crate::error::IoOp::Create,
            path: path.to_path_buf(),
            source: e,
        })?;
    private(path)
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_ts(v: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(v).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl Inventory {
    /// Creates a new database; fails if the file exists.
    pub fn create(path: &Path) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if path.exists() {
            return Err(Error::CaExists {
                path: path.to_path_buf(),
            });
        }
        // Made 0600 before SQLite opens it, whatever the umask: SQLite gives the WAL and its
        // index the mode of the database file.
        create_private(path)?;
        let inv = Self::open_with(path, flags)?;
        inv.conn
            .execute_batch(&format!(
                "PRAGMA journal_mode = WAL; BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(|e| inv.err(e))?;
        Ok(inv)
    }

    /// Opens an existing database.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::NotACaDirectory {
                path: path.parent().unwrap_or(path).to_path_buf(),
                missing: path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            });
        }
        // An inventory made by an older release (or by hand) is made owner-only: it names
        // every certificate issued.
        for p in [
            path.to_path_buf(),
            suffixed(path, "-wal"),
            suffixed(path, "-shm"),
        ] {
            if p.exists() {
                private(&p)?;
            }
        }
        let inv = Self::open_with(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let version: i64 = inv
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| inv.err(e))?;
        if version != SCHEMA_VERSION {
            return Err(inv.err(rusqlite::Error::InvalidParameterName(format!(
                "schema version {version}, expected {SCHEMA_VERSION}"
            ))));
        }
        Ok(inv)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Self> {
        let err = |source| Error::Inventory {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(path, flags).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // Every commit is on disk before it returns; the WAL is not truncated past 4 MiB.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 4194304;")
            .map_err(err)?;
        // Every `pki` run is a short process. SQLite's default close would checkpoint, then
        // delete the WAL and its index, and the next run would create them again; instead the
        // WAL stays, and is checkpointed and emptied only once it has grown (see
        // `CHECKPOINT_AT`).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(err)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Inventory {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes a consistent copy of the database to `path`, which must not exist (`VACUUM
    /// INTO`: one read transaction, so writers in other processes are neither stopped nor
    /// seen half-way). The copy is made 0600 before SQLite writes it and synced.
    pub fn snapshot_into(&self, path: &Path) -> Result<()> {
        create_private(path)?;
        let target = path.to_str().ok_or_else(|| Error::InvalidArgument {
            what: "backup path",
            value: path.display().to_string(),
            expected: "a UTF-8 path",
        })?;
        self.conn
            .execute("VACUUM INTO ?1", [target])
            .map_err(|e| self.err(e))?;
        // VACUUM INTO does not sync its output.
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::Io {
                op: crate::error::IoOp::Sync,
                path: path.to_path_buf(),
                source: e,
            })
    }

    /// Records a newly issued certificate. Returns `false` (and stores nothing) if the serial is
    /// already taken, so the caller can sign again with a fresh serial.
    pub fn insert(&self, cert: &Certificate, kind: &Issued) -> Result<bool> {
        let Issued {
            profile,
            key_algorithm,
            at: issued_at,
        } = *kind;
        let info = cert.info();
        let names: Vec<String> = info
            .subject_alt_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        self.savepoint(|| {
            let inserted = self.conn.execute(
                "INSERT INTO certificates (serial, common_name, names, profile, key_algorithm, \
                 not_before, not_after, issued_at, status, fingerprint) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'valid', ?9)",
                params![
                    info.serial.to_hex(),
                    info.common_name.clone().unwrap_or_default(),
                    names.join("\n"),
                    profile.name(),
                    key_algorithm.name(),
                    ts(info.not_before),
                    ts(info.not_after),
                    ts(issued_at),
                    info.sha256_fingerprint,
                ],
            );
            match inserted {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
            self.conn.execute(
                "INSERT INTO certificate_der (serial, der) VALUES (?1, ?2)",
                params![info.serial.to_hex(), cert.der()],
            )?;
            Ok(true)
        })
    }

    /// Runs `f` atomically. Savepoints nest, so this works alone (as its own transaction) and
    /// inside [`Inventory::in_transaction`].
    fn savepoint<T>(&self, f: impl FnOnce() -> rusqlite::Result<T>) -> Result<T> {
        self.conn
            .execute_batch("SAVEPOINT pki")
            .map_err(|e| self.err(e))?;
        match f() {
            Ok(v) => {
                self.conn
                    .execute_batch("RELEASE pki")
                    .map_err(|e| self.err(e))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK TO pki; RELEASE pki");
                Err(self.err(e))
            }
        }
    }

    /// The DER of a certificate by serial.
    pub fn der(&self, serial: &Serial) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row(
                "SELECT der FROM certificate_der WHERE serial = ?1",
                [serial.to_hex()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A record by serial.
    pub fn get(&self, serial: &Serial, now: OffsetDateTime) -> Result<Option<Record>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT_RECORD} WHERE serial = ?1"))
            .map_err(|e| self.err(e))?;
        stmt.query_row([serial.to_hex()], |r| record(r, now))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Marks a certificate revoked. Revoking twice changes nothing and says so.
    pub fn revoke(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        at: OffsetDateTime,
    ) -> Result<RevokeOutcome> {
        // One conditional UPDATE is atomic on its own, so this also works inside a caller's
        // transaction (bulk revocations).
        let changed = self
            .conn
            .execute(
                "UPDATE certificates SET status = 'revoked', revoked_at = ?2, \
                 revocation_reason = ?3 WHERE serial = ?1 AND status = 'valid'",
                params![serial.to_hex(), ts(at), reason.name()],
            )
            .map_err(|e| self.err(e))?;
        if changed == 1 {
            return Ok(RevokeOutcome::Revoked);
        }
        let existing: Option<(Option<i64>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT revoked_at, revocation_reason FROM certificates WHERE serial = ?1",
                [serial.to_hex()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match existing {
            None => Err(Error::UnknownSerial {
                serial: serial.to_hex(),
            }),
            Some((when, reason)) => Ok(RevokeOutcome::AlreadyRevoked(
                from_ts(when.unwrap_or(0)),
                reason.and_then(|r| r.parse().ok()).unwrap_or_default(),
            )),
        }
    }

    /// Certificates matching `filter`, ordered by expiry.
    pub fn list(&self, filter: &ListFilter, now: OffsetDateTime) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        self.for_each(filter, now, |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with each certificate matching `filter`, in expiry order, without holding them
    /// all in memory.
    pub fn for_each(
        &self,
        filter: &ListFilter,
        now: OffsetDateTime,
        mut f: impl FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        let now_ts = ts(now);
        let mut sql = format!("{SELECT_RECORD} WHERE 1");
        let mut args: Vec<i64> = Vec::new();
        match filter.status {
            Some(Status::Revoked) => sql.push_str(" AND status = 'revoked'"),
            Some(Status::Expired) => {
                sql.push_str(" AND status = 'valid' AND not_after < ?");
                args.push(now_ts);
            }
            Some(Status::Valid) => {
                sql.push_str(" AND status = 'valid' AND not_after >= ?");
                args.push(now_ts);
            }
            None => {}
        }
        if let Some(before) = filter.expiring_before {
            sql.push_str(" AND status = 'valid' AND not_after >= ? AND not_after < ?");
            args.extend([now_ts, ts(before)]);
        }
        sql.push_str(" ORDER BY not_after, serial");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args))
            .map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            f(record(row, now).map_err(|e| self.err(e))?)?;
        }
        Ok(())
    }

    /// Revoked certificates that have not yet expired at `now`, for a CRL (an expired
    /// certificate is rejected anyway, so RFC 5280 lets the CRL drop it).
    pub fn revoked_unexpired(&self, now: OffsetDateTime) -> Result<Vec<RevokedEntry>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT serial, revoked_at, revocation_reason FROM certificates \
                 WHERE status = 'revoked' AND not_after >= ?1",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([ts(now)]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let text = |i: usize| row.get_ref(i).ok().and_then(|v| v.as_str().ok());
            let serial = Serial::parse(text(0).unwrap_or_default())?;
            let at: Option<i64> = row.get(1).map_err(|e| self.err(e))?;
            out.push(RevokedEntry {
                serial,
                revoked_at: from_ts(at.unwrap_or(0)),
                reason: text(2)
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(RevocationReason::Unspecified),
            });
        }
        Ok(out)
    }

    /// What a CRL lists and its number, taken in one write transaction: a revocation
    /// committed by another process is either in this CRL or only in one with a higher
    /// number, never left out of a CRL numbered after one that has it.
    pub fn crl_snapshot(&self, now: OffsetDateTime) -> Result<(Vec<RevokedEntry>, u64)> {
        self.in_transaction(|inv| Ok((inv.revoked_unexpired(now)?, inv.next_crl_number()?)))
    }

    /// Takes the next CRL number (strictly increasing across processes).
    pub fn next_crl_number(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row(
                "UPDATE counters SET value = value + 1 WHERE name = 'crl_number' RETURNING value",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The latest expiry of the certificates issued at or before `at` (`None` when there is
    /// none): until then, an intermediate retired at `at` may still have leaves in use.
    pub fn latest_expiry_issued_by(&self, at: OffsetDateTime) -> Result<Option<OffsetDateTime>> {
        let n: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(not_after) FROM certificates WHERE issued_at <= ?1",
                [ts(at)],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok(n.map(from_ts))
    }

    /// Counts rows, for summaries.
    pub fn count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM certificates", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Runs `f` without SQLite's automatic checkpoints (every 1,000 WAL pages), each of which
    /// syncs the database file: a batch of many certificates is checkpointed once, at its end.
    pub(crate) fn deferring_checkpoints<T>(&self, f: impl FnOnce() -> T) -> T {
        let _ = self.conn.execute_batch("PRAGMA wal_autocheckpoint = 0");
        let out = f();
        let _ = self
            .conn
            .execute_batch("PRAGMA wal_autocheckpoint = 1000; PRAGMA wal_checkpoint(TRUNCATE);");
        out
    }

    /// Whether the CA issues wildcard names (a CA made before this setting existed does not).
    pub fn wildcards(&self) -> Result<Wildcards> {
        self.policy_table()?;
        let value: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM policy WHERE name = 'wildcards'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(match value.as_deref() {
            Some("allowed") => Wildcards::Allowed,
            _ => Wildcards::Refused,
        })
    }

    /// Records whether the CA issues wildcard names.
    pub fn set_wildcards(&self, wildcards: Wildcards) -> Result<()> {
        self.policy_table()?;
        let value = match wildcards {
            Wildcards::Allowed => "allowed",
            _ => "refused",
        };
        self.conn
            .execute(
                "INSERT INTO policy (name, value) VALUES ('wildcards', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [value],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The CA's policy settings, a table added after the first schema (made when missing).
    fn policy_table(&self) -> Result<()> {
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS policy (name TEXT PRIMARY KEY, value TEXT NOT NULL) \
                 STRICT;",
            )
            .map_err(|e| self.err(e))
    }

    /// Runs `f` inside one write transaction (bulk imports, benchmarks).
    pub fn in_transaction<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

const SELECT_RECORD: &str = "SELECT serial, common_name, names, profile, key_algorithm, \
     not_before, not_after, issued_at, status, revoked_at, revocation_reason, fingerprint \
     FROM certificates";

fn record(r: &rusqlite::Row<'_>, now: OffsetDateTime) -> rusqlite::Result<Record> {
    let text = |i: usize| -> rusqlite::Result<&str> {
        r.get_ref(i)?.as_str().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let not_after = from_ts(r.get(6)?);
    let status = if text(8)? == "revoked" {
        Status::Revoked
    } else if not_after < now {
        Status::Expired
    } else {
        Status::Valid
    };
    let names = text(2)?;
    Ok(Record {
        serial: text(0)?.to_owned(),
        common_name: text(1)?.to_owned(),
        names: if names.is_empty() {
            Vec::new()
        } else {
            names.split('\n').map(str::to_owned).collect()
        },
        profile: text(3)?.parse().ok(),
        key_algorithm: text(4)?.parse().ok(),
        not_before: from_ts(r.get(5)?),
        not_after,
        issued_at: from_ts(r.get(7)?),
        status,
        revoked_at: r.get::<_, Option<i64>>(9)?.map(from_ts),
        revocation_reason: r
            .get_ref(10)?
            .as_str_or_null()
            .ok()
            .flatten()
            .and_then(|s| s.parse().ok()),
        sha256_fingerprint: text(11)?.to_owned(),
    })
}
