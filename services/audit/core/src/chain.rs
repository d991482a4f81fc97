//! The audit log's keyed hash chain and its verifier (R-SEC-9: append-only, tamper-evident).
//!
//! # The chain
//! Every entry `n` (sequence numbers 1, 2, 3, … with no gap) stores
//!
//! ```text
//! hash(n) = HMAC-SHA256(chain_key, hash(n-1) || canonical_bytes(n, body(n)))
//! ```
//!
//! with `hash(0)` = [`GENESIS`] (32 zero bytes), or the hash of the last purged entry when the
//! log starts at a [`Checkpoint`]. The key is a secret of the deployment ([`ChainKey`]):
//! someone with only database access can read and change rows but cannot compute a valid hash
//! for a changed or inserted row.
//!
//! # Canonical bytes (version 1)
//! Big-endian integers; every variable-length value is length-prefixed, every optional value
//! has a presence byte, and fields come in this fixed order, so two different entries never
//! encode to the same bytes:
//!
//! | field | encoding |
//! |---|---|
//! | version | `u8` = 1 |
//! | `seq` | `i64` |
//! | `at_us` | `i64` (microseconds since the Unix epoch, UTC) |
//! | `kind`, `subject` | text |
//! | `org_id`, `system_id`, `key_id` | optional, 16 bytes of UUID |
//! | `session_id`, `ip`, `method`, `route` | optional text |
//! | `status` | optional `i32` |
//! | `bytes_in`, `bytes_out`, `duration_ms` | `i64` each |
//! | `payload_hash` | optional bytes |
//! | `action` | optional text |
//! | `detail` | text (compact JSON exactly as stored) |
//!
//! where *text* and *bytes* are a `u32` length then the bytes (UTF-8 for text), and
//! *optional X* is `0x00` when absent or `0x01` followed by X.
//!
//! # The head and the checkpoints
//! The last sequence number and hash are kept in a one-row head, sealed with a MAC under a
//! key derived from the chain key, so that deleting the newest entries (and rewinding the head
//! to an earlier row) is detected. A purge keeps, for the last entry it deleted, a
//! [`Checkpoint`] (sequence number and hash, also sealed): verification resumes from it. A
//! checkpoint cannot be forged to hide the deletion of entries that were not purged.
//!
//! What no in-database mechanism can detect is a rollback of the whole log to a state an
//! attacker copied earlier (or wiping everything); comparing the head with one recorded
//! outside the database (the writer logs it) covers that.

use crate::model::{AuditBody, AuditRecord};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use uuid::Uuid;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// A chain hash: HMAC-SHA256 output.
pub type ChainHash = [u8; 32];

/// The previous hash of entry 1.
pub const GENESIS: ChainHash = [0u8; 32];

/// Version byte of [`canonical_bytes`].
const CANONICAL_VERSION: u8 = 1;
/// Derivation labels of the sub-keys sealing the head and the checkpoints.
const HEAD_LABEL: &[u8] = b"etxhub/audit/head/v1";
const CHECKPOINT_LABEL: &[u8] = b"etxhub/audit/checkpoint/v1";
/// Derivation label of [`ChainKey::derive`].
const DERIVE_LABEL: &[u8] = b"etxhub/audit/chain/v1";

fn hmac(key: &[u8], parts: &[&[u8]]) -> ChainHash {
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn hmac_matches(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    // Constant-time comparison.
    mac.verify_slice(tag).is_ok()
}

/// The secret that keys the chain. Every process writing or verifying one database's log
/// must hold the same key, and it must never change for the life of the log (a new key makes
/// every older entry fail verification). `Debug` never shows it; it is zeroized on drop.
#[derive(Clone)]
pub struct ChainKey {
    key: Zeroizing<[u8; 32]>,
    head: Zeroizing<[u8; 32]>,
    checkpoint: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey([redacted])")
    }
}

impl ChainKey {
    /// A chain key of exactly these bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self {
            head: Zeroizing::new(hmac(&key, &[HEAD_LABEL])),
            checkpoint: Zeroizing::new(hmac(&key, &[CHECKPOINT_LABEL])),
            key: Zeroizing::new(key),
        }
    }

    /// The chain key derived from a deployment secret (e.g. the keyed-hash key, at least 32
    /// random bytes): `HMAC-SHA256(secret, "etxhub/audit/chain/v1")`, so it is independent of
    /// every other use of that secret.
    pub fn derive(secret: &[u8]) -> Self {
        Self::from_bytes(hmac(secret, &[DERIVE_LABEL]))
    }

    /// The hash of entry `seq` after `prev`.
    pub fn link(&self, prev: &[u8], seq: i64, body: &AuditBody) -> ChainHash {
        hmac(&self.key[..], &[prev, &canonical_bytes(seq, body)])
    }

    /// The MAC sealing a head `(seq, hash)`.
    pub fn head_mac(&self, seq: i64, hash: &[u8]) -> ChainHash {
        hmac(&self.head[..], &[&seq.to_be_bytes(), hash])
    }

    /// The MAC sealing a checkpoint.
    pub fn checkpoint_mac(&self, seq: i64, hash: &[u8], purged_before_us: i64) -> ChainHash {
        hmac(
            &self.checkpoint[..],
            &[&seq.to_be_bytes(), hash, &purged_before_us.to_be_bytes()],
        )
    }

    fn head_ok(&self, h: &Head) -> bool {
        match &h.mac {
            Some(mac) => hmac_matches(&self.head[..], &[&h.seq.to_be_bytes(), &h.hash], mac),
            // The head as the migration creates it, before any entry.
            None => h.seq == 0 && h.hash == GENESIS,
        }
    }

    fn checkpoint_ok(&self, c: &Checkpoint) -> bool {
        hmac_matches(
            &self.checkpoint[..],
            &[&c.seq.to_be_bytes(), &c.hash, &c.purged_before_us.to_be_bytes()],
            &c.mac,
        )
    }
}

struct Canon(Vec<u8>);

impl Canon {
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        // Every stored value is far below 4 GiB; saturating keeps the function total.
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                f(self, v);
            }
        }
    }
    fn uuid(&mut self, u: Option<Uuid>) {
        self.opt(u, |c, u| c.0.extend_from_slice(u.as_bytes()));
    }
}

/// The canonical, unambiguous encoding of entry `seq` (see the module docs).
pub fn canonical_bytes(seq: i64, b: &AuditBody) -> Vec<u8> {
    let mut c = Canon(Vec::with_capacity(256 + b.detail.len()));
    c.0.push(CANONICAL_VERSION);
    c.i64(seq);
    c.i64(b.at_us);
    c.text(&b.kind);
    c.text(&b.subject);
    c.uuid(b.org_id);
    c.uuid(b.system_id);
    c.uuid(b.key_id);
    c.opt(b.session_id.as_deref(), Canon::text);
    c.opt(b.ip.as_deref(), Canon::text);
    c.opt(b.method.as_deref(), Canon::text);
    c.opt(b.route.as_deref(), Canon::text);
    c.opt(b.status, |c, s| c.0.extend_from_slice(&s.to_be_bytes()));
    c.i64(b.bytes_in);
    c.i64(b.bytes_out);
    c.i64(b.duration_ms);
    c.opt(b.payload_hash.as_deref(), Canon::bytes);
    c.opt(b.action.as_deref(), Canon::text);
    c.text(&b.detail);
    c.0
}

/// A point of the chain: a sequence number and the hash of that entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Sequence number (0 before the first entry).
    pub seq: i64,
    /// Its hash ([`GENESIS`] for 0).
    #[serde(with = "hex_hash")]
    pub hash: ChainHash,
}

impl Anchor {
    /// Before the first entry.
    pub const GENESIS: Anchor = Anchor {
        seq: 0,
        hash: GENESIS,
    };
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        <[u8; 32]>::try_from(v.as_slice()).map_err(|_| serde::de::Error::custom("expected 32 bytes"))
    }
}

/// The head row as stored: the last sequence number and hash, and its seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Last sequence number (0: empty log).
    pub seq: i64,
    /// Hash of that entry.
    pub hash: Vec<u8>,
    /// `None` only for the head the migration creates (seq 0, genesis hash).
    pub mac: Option<Vec<u8>>,
}

/// Where a purge stopped: entries up to `seq` were deleted and verification resumes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last purged sequence number.
    pub seq: i64,
    /// Its hash.
    pub hash: Vec<u8>,
    /// The purge's cutoff (microseconds since the epoch): every purged entry was older.
    pub purged_before_us: i64,
    /// [`ChainKey::checkpoint_mac`] of the above.
    pub mac: Vec<u8>,
}

/// Why verification failed at a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum BreakReason {
    /// The entry's contents or hash do not match the chain: it was altered, reordered or
    /// forged without the key.
    HashMismatch,
    /// The entry is missing (deleted): the log jumps from the previous entry to `next_found`
    /// (`None`: nothing follows, but the head says entries do).
    Missing {
        /// The next sequence number present, if any.
        next_found: Option<i64>,
    },
    /// Rows came back out of order (only possible with a corrupted index or input).
    OutOfOrder {
        /// The sequence number found instead.
        found: i64,
    },
    /// Entries exist beyond the head: the head was rewound or rows were injected.
    BeyondHead {
        /// The head's sequence number.
        head_seq: i64,
    },
    /// The head's seal or hash does not match the last entry: it was changed.
    HeadMismatch,
    /// The checkpoint the log resumes from is not sealed by the key: it was forged.
    CheckpointForged,
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HashMismatch => {
                f.write_str("contents do not match the hash chain (altered, reordered or forged)")
            }
            Self::Missing { next_found: Some(n) } => {
                write!(f, "entry is missing (deleted); the log continues at {n}")
            }
            Self::Missing { next_found: None } => {
                f.write_str("entry is missing (deleted); the head records later entries than the log holds")
            }
            Self::OutOfOrder { found } => write!(f, "entries out of order: found {found}"),
            Self::BeyondHead { head_seq } => write!(f, "entries exist beyond the head ({head_seq})"),
            Self::HeadMismatch => f.write_str("the head does not match the last entry (changed)"),
            Self::CheckpointForged => f.write_str("the purge checkpoint is not genuine"),
        }
    }
}

/// The first break found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// The first sequence number that does not verify.
    pub seq: i64,
    /// Why.
    #[serde(flatten)]
    pub reason: BreakReason,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {}: {}", self.seq, self.reason)
    }
}

/// The outcome of verifying a whole log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum VerifyReport {
    /// Every entry verifies and the head matches.
    Ok {
        /// Entries checked.
        checked: u64,
        /// First sequence number checked.
        first_seq: Option<i64>,
        /// Last sequence number checked.
        last_seq: Option<i64>,
        /// The checkpoint verification resumed from (entries up to it were purged).
        resumed_after: Option<i64>,
    },
    /// The first break.
    Broken {
        /// Entries that verified before it.
        checked: u64,
        /// Where and why.
        #[serde(flatten)]
        at: ChainBreak,
    },
}

impl VerifyReport {
    /// Whether the log verified.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok { .. })
    }

    /// The first broken sequence number, if any.
    pub fn broken_seq(&self) -> Option<i64> {
        match self {
            Self::Ok { .. } => None,
            Self::Broken { at, .. } => Some(at.seq),
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok {
                checked,
                first_seq,
                last_seq,
                resumed_after,
            } => {
                write!(f, "OK: {checked} entries verified")?;
                if let (Some(a), Some(b)) = (first_seq, last_seq) {
                    write!(f, " ({a}..={b})")?;
                }
                if let Some(c) = resumed_after {
                    write!(f, ", resuming after purge checkpoint {c}")?;
                }
                Ok(())
            }
            Self::Broken { checked, at } => write!(f, "BROKEN at {at} ({checked} entries verified before)"),
        }
    }
}

/// Verifies a log entry by entry in constant memory: start it at the latest checkpoint (or
/// genesis), feed it the entries in sequence order with [`Self::check`], then compare with the
/// head in [`Self::finish`].
#[derive(Debug)]
pub struct ChainVerifier<'k> {
    key: &'k ChainKey,
    prev: Anchor,
    resumed_after: Option<i64>,
    checked: u64,
    first: Option<i64>,
}

impl<'k> ChainVerifier<'k> {
    /// A verifier resuming after `checkpoint` (the one with the highest sequence number), or
    /// from genesis. A checkpoint not sealed by `key` is a break at the entry after it.
    pub fn start(key: &'k ChainKey, checkpoint: Option<&Checkpoint>) -> Result<Self, ChainBreak> {
        let prev = match checkpoint {
            None => Anchor::GENESIS,
            Some(c) => {
                let hash = <ChainHash>::try_from(c.hash.as_slice()).ok();
                match hash {
                    Some(hash) if key.checkpoint_ok(c) => Anchor { seq: c.seq, hash },
                    _ => {
                        return Err(ChainBreak {
                            seq: c.seq.saturating_add(1),
                            reason: BreakReason::CheckpointForged,
                        });
                    }
                }
            }
        };
        Ok(Self {
            key,
            prev,
            resumed_after: checkpoint.map(|c| c.seq),
            checked: 0,
            first: None,
        })
    }

    /// Entries verified so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The last verified point.
    pub fn last(&self) -> Anchor {
        self.prev
    }

    /// Checks the next entry (entries must come in increasing sequence order).
    pub fn check(&mut self, r: &AuditRecord) -> Result<(), ChainBreak> {
        let expected = self.prev.seq.saturating_add(1);
        if r.seq > expected {
            return Err(ChainBreak {
                seq: expected,
                reason: BreakReason::Missing {
                    next_found: Some(r.seq),
                },
            });
        }
        if r.seq < expected {
            return Err(ChainBreak {
                seq: expected,
                reason: BreakReason::OutOfOrder { found: r.seq },
            });
        }
        let computed = self.key.link(&self.prev.hash, r.seq, &r.body);
        if !same_bytes(&computed, &r.hash) {
            return Err(ChainBreak {
                seq: r.seq,
                reason: BreakReason::HashMismatch,
            });
        }
        self.prev = Anchor {
            seq: r.seq,
            hash: computed,
        };
        self.first.get_or_insert(r.seq);
        self.checked += 1;
        Ok(())
    }

    /// Compares the last verified entry with the stored head: a head further on means the
    /// newest entries were deleted; a head behind means it was rewound; any other difference
    /// means it was changed.
    pub fn finish(self, head: &Head) -> Result<VerifyReport, ChainBreak> {
        let last = self.prev;
        if head.seq > last.seq {
            return Err(ChainBreak {
                seq: last.seq.saturating_add(1),
                reason: BreakReason::Missing { next_found: None },
            });
        }
        if head.seq < last.seq {
            return Err(ChainBreak {
                seq: head.seq.saturating_add(1),
                reason: BreakReason::BeyondHead { head_seq: head.seq },
            });
        }
        if head.hash.as_slice() != last.hash.as_slice() || !self.key.head_ok(head) {
            return Err(ChainBreak {
                seq: head.seq,
                reason: BreakReason::HeadMismatch,
            });
        }
        Ok(VerifyReport::Ok {
            checked: self.checked,
            first_seq: self.first,
            last_seq: self.first.map(|_| last.seq),
            resumed_after: self.resumed_after,
        })
    }

    /// The report for a break found by [`Self::check`] or [`Self::finish`].
    pub fn broken(checked: u64, at: ChainBreak) -> VerifyReport {
        VerifyReport::Broken { checked, at }
    }
}

/// Byte equality without early exit (the hashes are not secret, but the habit is cheap).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies a whole log held in memory (tests, small tools): checkpoint, entries in order,
/// head.
pub fn verify_all<'a>(
    key: &ChainKey,
    checkpoint: Option<&Checkpoint>,
    records: impl IntoIterator<Item = &'a AuditRecord>,
    head: &Head,
) -> VerifyReport {
    let mut v = match ChainVerifier::start(key, checkpoint) {
        Ok(v) => v,
        Err(b) => return ChainVerifier::broken(0, b),
    };
    for r in records {
        if let Err(b) = v.check(r) {
            return ChainVerifier::broken(v.checked(), b);
        }
    }
    let checked = v.checked();
    v.finish(head)
        .unwrap_or_else(|b| ChainVerifier::broken(checked, b))
}

/// Appends bodies to a chain that ends at `prev`: the records with their sequence numbers and
/// hashes, and the new end.
pub fn seal(key: &ChainKey, prev: Anchor, bodies: Vec<AuditBody>) -> (Vec<AuditRecord>, Anchor) {
    let mut at = prev;
    let records = bodies
        .into_iter()
        .map(|body| {
            let seq = at.seq.saturating_add(1);
            let hash = key.link(&at.hash, seq, &body);
            at = Anchor { seq, hash };
            AuditRecord {
                seq,
                body,
                hash: hash.to_vec(),
            }
        })
        .collect();
    (records, at)
}

/// The head row for the chain's end `a`, sealed.
pub fn head_of(key: &ChainKey, a: Anchor) -> Head {
    Head {
        seq: a.seq,
        hash: a.hash.to_vec(),
        mac: Some(key.head_mac(a.seq, &a.hash).to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AuditKind, NewAuditEntry};
    use chrono::{TimeZone, Utc};

    fn key() -> ChainKey {
        ChainKey::derive(b"test secret of at least thirty-two bytes")
    }

    fn bodies(n: usize) -> Vec<AuditBody> {
        (0..n)
            .map(|i| {
                let mut e = NewAuditEntry::new(AuditKind::Request, format!("system:{i}"))
                    .at(Utc
                        .timestamp_opt(1_800_000_000 + i as i64, 0)
                        .single()
                        .unwrap_or_default())
                    .http("POST", "/api/v1/records", 201);
                e.bytes_in = 100 + i as u64;
                AuditBody::from_new(e)
            })
            .collect()
    }

    fn log(n: usize) -> (Vec<AuditRecord>, Head) {
        let (recs, end) = seal(&key(), Anchor::GENESIS, bodies(n));
        (recs, head_of(&key(), end))
    }

    fn genesis_head() -> Head {
        Head {
            seq: 0,
            hash: GENESIS.to_vec(),
            mac: None,
        }
    }

    #[test]
    fn an_untouched_log_verifies() {
        let (recs, head) = log(10);
        let r = verify_all(&key(), None, &recs, &head);
        assert_eq!(
            r,
            VerifyReport::Ok {
                checked: 10,
                first_seq: Some(1),
                last_seq: Some(10),
                resumed_after: None
            }
        );
        assert!(verify_all(&key(), None, &[], &genesis_head()).is_ok());
    }

    #[test]
    fn tampering_with_any_field_is_detected_at_that_entry() {
        let (recs, head) = log(10);
        let tamperings: [fn(&mut AuditBody); 10] = [
            |b| b.status = Some(200),
            |b| b.at_us += 1,
            |b| b.kind = "security".into(),
            |b| b.subject.push('x'),
            |b| b.org_id = Some(Uuid::nil()),
            |b| b.ip = Some("10.0.0.1".into()),
            |b| b.route = None,
            |b| b.bytes_out = 7,
            |b| b.payload_hash = Some(vec![1; 32]),
            |b| b.detail = "{\"a\":1}".into(),
        ];
        for t in tamperings {
            let mut bad = recs.clone();
            t(&mut bad[6].body);
            let r = verify_all(&key(), None, &bad, &head);
            assert_eq!(r.broken_seq(), Some(7), "{r}");
            assert!(matches!(
                r,
                VerifyReport::Broken {
                    checked: 6,
                    at: ChainBreak {
                        reason: BreakReason::HashMismatch,
                        ..
                    }
                }
            ));
        }
    }

    #[test]
    fn a_deleted_entry_is_a_gap_at_its_number() {
        let (mut recs, head) = log(10);
        recs.remove(3);
        let r = verify_all(&key(), None, &recs, &head);
        assert_eq!(r.broken_seq(), Some(4));
        assert!(r.to_string().contains("missing"), "{r}");
        recs.remove(0);
        assert_eq!(verify_all(&key(), None, &recs, &head).broken_seq(), Some(1));
    }

    #[test]
    fn reordered_entries_are_detected() {
        let (recs, head) = log(10);
        // Rows read back in another order.
        let mut swapped = recs.clone();
        swapped.swap(4, 5);
        assert_eq!(verify_all(&key(), None, &swapped, &head).broken_seq(), Some(5));
        // Contents swapped between two numbers (sequence numbers kept).
        let mut moved = recs.clone();
        let b4 = moved[4].body.clone();
        moved[4].body = moved[5].body.clone();
        moved[5].body = b4;
        let r = verify_all(&key(), None, &moved, &head);
        assert_eq!(r.broken_seq(), Some(5));
    }

    #[test]
    fn a_truncated_tail_is_detected_against_the_head() {
        let (mut recs, head) = log(10);
        recs.truncate(8);
        let r = verify_all(&key(), None, &recs, &head);
        assert_eq!(r.broken_seq(), Some(9));
        // Rewinding the head to the new end is detected too: the attacker cannot seal it.
        let forged = Head {
            seq: 8,
            hash: recs[7].hash.clone(),
            mac: head.mac.clone(),
        };
        let r = verify_all(&key(), None, &recs, &forged);
        assert!(
            matches!(&r, VerifyReport::Broken { at, .. } if at.seq == 8 && at.reason == BreakReason::HeadMismatch),
            "{r}"
        );
        let unsealed = Head { mac: None, ..forged };
        assert_eq!(verify_all(&key(), None, &recs, &unsealed).broken_seq(), Some(8));
    }

    #[test]
    fn entries_beyond_the_head_or_a_changed_head_are_detected() {
        let (recs, head) = log(5);
        let behind = head_of(
            &key(),
            Anchor {
                seq: 4,
                hash: <ChainHash>::try_from(recs[3].hash.as_slice()).unwrap_or(GENESIS),
            },
        );
        assert_eq!(verify_all(&key(), None, &recs, &behind).broken_seq(), Some(5));
        let mut changed = head.clone();
        changed.hash[0] ^= 1;
        assert_eq!(verify_all(&key(), None, &recs, &changed).broken_seq(), Some(5));
        assert_eq!(verify_all(&key(), None, &[], &head).broken_seq(), Some(1));
    }

    #[test]
    fn a_forged_entry_without_the_key_does_not_verify() {
        let (mut recs, head) = log(5);
        let other = ChainKey::derive(b"someone else's secret, also long enough");
        recs[2].body.status = Some(500);
        let prev = <ChainHash>::try_from(recs[1].hash.as_slice()).unwrap_or(GENESIS);
        recs[2].hash = other.link(&prev, 3, &recs[2].body).to_vec();
        assert_eq!(verify_all(&key(), None, &recs, &head).broken_seq(), Some(3));
    }

    #[test]
    fn verification_resumes_from_a_sealed_checkpoint_only() {
        let k = key();
        let (recs, head) = log(10);
        let cp = Checkpoint {
            seq: 4,
            hash: recs[3].hash.clone(),
            purged_before_us: 123,
            mac: k.checkpoint_mac(4, &recs[3].hash, 123).to_vec(),
        };
        let rest = &recs[4..];
        let r = verify_all(&k, Some(&cp), rest, &head);
        assert_eq!(
            r,
            VerifyReport::Ok {
                checked: 6,
                first_seq: Some(5),
                last_seq: Some(10),
                resumed_after: Some(4)
            }
        );
        // Deleting more than was purged and moving the checkpoint forward needs the key.
        let forged = Checkpoint {
            seq: 6,
            hash: recs[5].hash.clone(),
            purged_before_us: 123,
            mac: cp.mac.clone(),
        };
        let r = verify_all(&k, Some(&forged), &recs[6..], &head);
        assert!(
            matches!(&r, VerifyReport::Broken { at, .. } if at.seq == 7 && at.reason == BreakReason::CheckpointForged),
            "{r}"
        );
        // The checkpoint kept while newer entries after it were deleted: a gap.
        assert_eq!(verify_all(&k, Some(&cp), &recs[6..], &head).broken_seq(), Some(5));
    }

    #[test]
    fn canonical_bytes_are_unambiguous() {
        let mut a = bodies(1).remove(0);
        a.subject = "ab".into();
        a.action = Some("c".into());
        let mut b = a.clone();
        b.subject = "a".into();
        b.action = Some("bc".into());
        assert_ne!(canonical_bytes(1, &a), canonical_bytes(1, &b));
        let mut c = a.clone();
        c.session_id = Some(String::new());
        assert_ne!(canonical_bytes(1, &a), canonical_bytes(1, &c));
        assert_ne!(canonical_bytes(1, &a), canonical_bytes(2, &a));
        assert_eq!(canonical_bytes(1, &a), canonical_bytes(1, &a.clone()));
    }

    #[test]
    fn the_key_never_prints_and_derivation_separates_uses() {
        let k = key();
        assert_eq!(format!("{k:?}"), "ChainKey([redacted])");
        let secret = b"test secret of at least thirty-two bytes";
        assert_ne!(
            k.link(&GENESIS, 1, &bodies(1)[0]),
            ChainKey::from_bytes(*b"test secret of at least thirty-t").link(&GENESIS, 1, &bodies(1)[0])
        );
        assert_ne!(k.head_mac(1, &GENESIS), k.checkpoint_mac(1, &GENESIS, 0));
        assert_eq!(
            ChainKey::derive(secret).head_mac(3, &GENESIS),
            k.head_mac(3, &GENESIS)
        );
    }

    #[test]
    fn reports_serialise_for_tools() {
        let (mut recs, head) = log(3);
        recs.remove(1);
        let r = verify_all(&key(), None, &recs, &head);
        let v = serde_json::to_value(&r).unwrap_or_default();
        assert_eq!(v["outcome"], "broken");
        assert_eq!(v["seq"], 2);
        assert_eq!(v["reason"], "missing");
        assert_eq!(v["next_found"], 3);
    }
}
