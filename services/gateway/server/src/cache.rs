//! A short-lived cache of successful authentications — API keys and OAuth2 access tokens
//! (R-SEC-1), session tokens (R-SEC-5) — so that the gateway does not ask identity — a database
//! query, and in distributed mode an HTTP round trip — on every request. Entries live at most
//! `ttl` (1 s by default) and the whole cache is cleared the moment a key or token is revoked, a
//! session ends or moves on, or an account changes through this gateway, so such a change takes
//! effect at once here and within `ttl` on other gateway instances. Only a SHA-256 of the
//! presented credential is kept, never the credential itself; failures are never cached.

use etx_identity_core::Caller;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most entries kept; beyond it the cache is emptied (a flood of distinct keys cannot grow it).
const MAX_ENTRIES: usize = 100_000;

/// The cache.
#[derive(Debug)]
pub struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
}

impl AuthCache {
    /// A cache keeping entries for `ttl`; a zero `ttl` disables it.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn digest(kind: &[u8], presented: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(kind);
        h.update([0u8]);
        h.update(presented.as_bytes());
        h.finalize().into()
    }

    /// The cached caller for a presented API key, if fresh.
    pub fn get(&self, presented: &str) -> Option<Caller> {
        self.lookup(Self::digest(b"key", presented))
    }

    /// The cached caller for a session token, if fresh.
    pub fn get_session(&self, token: &str) -> Option<Caller> {
        self.lookup(Self::digest(b"session", token))
    }

    /// Remembers a successful API-key authentication.
    pub fn put(&self, presented: &str, caller: Caller) {
        self.store(Self::digest(b"key", presented), caller);
    }

    /// Remembers a successful session authentication.
    pub fn put_session(&self, token: &str, caller: Caller) {
        self.store(Self::digest(b"session", token), caller);
    }

    /// The cached caller for an OAuth2 access token, if fresh. Kept apart from API keys, so
    /// that a token is never taken for a key. The caller checks the token's own expiry
    /// (`Caller::expires_at`), which may come before the entry's.
    pub fn get_token(&self, token: &str) -> Option<Caller> {
        self.lookup(Self::digest(b"token", token))
    }

    /// Remembers a successful access-token authentication.
    pub fn put_token(&self, token: &str, caller: Caller) {
        self.store(Self::digest(b"token", token), caller);
    }

    fn lookup(&self, d: [u8; 32]) -> Option<Caller> {
        if self.ttl.is_zero() {
            return None;
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&d) {
            Some((c, at)) if at.elapsed() < self.ttl => Some(c.clone()),
            Some(_) => {
                map.remove(&d);
                None
            }
            None => None,
        }
    }

    fn store(&self, d: [u8; 32], caller: Caller) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(d, (caller, Instant::now()));
    }

    /// Forgets everything (called when a key is revoked, a session ends or changes, an account
    /// changes).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etx_domain::{ApiKeyId, OrgId, SystemId};

    fn caller() -> Caller {
        Caller::system(OrgId::new(), SystemId::new(), ApiKeyId::new())
    }

    #[test]
    fn keys_and_session_tokens_do_not_share_entries() {
        let c = AuthCache::new(Duration::from_secs(5));
        c.put("same", caller());
        assert!(c.get("same").is_some());
        assert!(c.get_session("same").is_none());
        c.put_session("tok", caller());
        assert!(c.get_session("tok").is_some());
        assert!(c.get("tok").is_none());
        c.put_token("bearer", caller());
        assert!(c.get_token("bearer").is_some());
        assert!(c.get("bearer").is_none(), "a token is never taken for an API key");
        assert!(c.get_session("bearer").is_none());
        assert!(c.get_token("same").is_none());
    }

    #[test]
    fn entries_expire_and_clear_forgets_everything() {
        let c = AuthCache::new(Duration::from_millis(30));
        c.put("k1", caller());
        assert!(c.get("k1").is_some());
        assert!(c.get("k2").is_none());
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get("k1").is_none(), "expired");
        c.put("k1", caller());
        c.clear();
        assert!(c.get("k1").is_none());
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let c = AuthCache::new(Duration::ZERO);
        c.put("k1", caller());
        assert!(c.get("k1").is_none());
    }
}
