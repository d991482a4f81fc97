//! Revocations reach every gateway instance at once (R-SEC-1, issue 4 §5): each gateway keeps
//! a short cache of successful authentications ([`AuthCache`]); when a key is revoked or a
//! session ends through one gateway, it clears its own cache and publishes a notice on a
//! Redis channel, and every other gateway — subscribed to that channel — clears its cache as
//! soon as the notice arrives (milliseconds). If Redis is unreachable, a gateway still stops
//! honouring a revoked credential after its cache lifetime (`security.auth_cache_ms`, 1 s by
//! default), so the worst case is bounded either way.
//!
//! In all-in-one there is one gateway and no bus ([`RevocationBus::local`]).

use crate::cache::AuthCache;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait before re-subscribing after the subscription failed.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// The revocation broadcast of one gateway process.
#[derive(Debug, Clone)]
pub struct RevocationBus {
    redis: Option<(redis::Client, String)>,
    cache: Arc<AuthCache>,
}

impl RevocationBus {
    /// A bus for a single gateway: revoking clears only this process's cache.
    pub fn local(cache: Arc<AuthCache>) -> Self {
        Self { redis: None, cache }
    }

    /// A bus over Redis at `url`, on the channel `<prefix>auth:revoked`. Call
    /// [`Self::spawn_listener`] to receive other instances' notices.
    pub fn redis(url: &str, prefix: &str, cache: Arc<AuthCache>) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self {
            redis: Some((client, format!("{prefix}auth:revoked"))),
            cache,
        })
    }

    /// A credential was revoked through this gateway: forget every cached authentication here
    /// and tell the other instances. Never fails the request: if Redis cannot be reached, the
    /// others stop within their cache lifetime.
    pub async fn revoked(&self) {
        self.cache.clear();
        let Some((client, channel)) = &self.redis else {
            return;
        };
        let published = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg("revoked")
                .query_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(Duration::from_secs(2), published).await {
            Ok(Ok(receivers)) => tracing::debug!(receivers, "revocation published"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot publish a revocation; other gateways stop within their cache lifetime")
            }
            Err(_) => tracing::warn!(
                "publishing a revocation timed out; other gateways stop within their cache lifetime"
            ),
        }
    }

    /// Subscribes to the other instances' notices, clearing the cache on each, for as long as
    /// the process runs; re-subscribes after a failure (clearing the cache then too, since a
    /// notice may have been missed).
    pub fn spawn_listener(&self) -> Option<tokio::task::JoinHandle<()>> {
        let (client, channel) = self.redis.clone()?;
        let cache = self.cache.clone();
        Some(tokio::spawn(async move {
            loop {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            cache.clear();
                            let mut messages = pubsub.on_message();
                            while messages.next().await.is_some() {
                                cache.clear();
                            }
                            tracing::warn!("revocation subscription ended; re-subscribing");
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot subscribe to revocations"),
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot reach Redis for revocations"),
                }
                cache.clear();
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
            }
        }))
    }
}
