//! The API gateway (R-SEC-1, R-SEC-2, R-SEC-4): TLS termination, API-key authentication and
//! rate limiting of every `/api/**` call, and routing to the services — in-process in all-in-one, over HTTP with a
//! signed principal in distributed mode.

pub mod audit;
pub mod auth;
pub mod cache;
pub mod proxy;
pub mod ratelimit;
pub mod revocation;
pub mod tls;

pub use audit::{AuditHandle, audit};
pub use auth::{IdentityHandle, authenticate};
pub use cache::AuthCache;
pub use proxy::{Proxy, forward};
pub use ratelimit::{MemoryLimiter, RateLimits, RedisLimiter};
pub use revocation::RevocationBus;
