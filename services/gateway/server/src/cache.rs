//! A short-lived cache of successful API-key authentications (R-SEC-1), so that the gateway
//! does not ask identity — a database query, and in distributed mode an HTTP round trip — on
//! every request. Entries live at most `ttl` (1 s by default) and the whole cache is cleared
//! the moment a key is revoked through this gateway, so a revoked key stops working at once
//! here and within `ttl` on other gateway instances. Only a SHA-256 of the presented key is
//! kept, never the key itself; failures are never cached.

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

    fn digest(presented: &str) -> [u8; 32] {
        Sha256::digest(presented.as_bytes()).into()
    }

    /// The cached caller for a presented key, if fresh.
    pub fn get(&self, presented: &str) -> Option<Caller> {
        if self.ttl.is_zero() {
            return None;
        }
        let d = Self::digest(presented);
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

    /// Remembers a successful authentication.
    pub fn put(&self, presented: &str, caller: Caller) {
        if self.ttl.is_zero() {
            return;
        }
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(Self::digest(presented), (caller, Instant::now()));
    }

    /// Forgets everything (called when a key is revoked).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etx_domain::{ApiKeyId, OrgId, SystemId};

    fn caller() -> Caller {
        Caller {
            org_id: OrgId::new(),
            system_id: SystemId::new(),
            key_id: ApiKeyId::new(),
            roles: vec![],
        }
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
