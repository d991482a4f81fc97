//! The OpenID Connect provider over HTTP (issue 4 §4, R-SEC-5): the adapter of
//! [`OidcProvider`]. Its metadata comes from `{issuer}/.well-known/openid-configuration`
//! (OpenID Connect Discovery; the document's `issuer` must be the configured one), the
//! authorization URL and the code exchange from the `oauth2` crate — PKCE S256, client
//! authentication with `client_secret_basic` (or `client_secret_post` when that is all the
//! provider supports) — whose HTTP goes through a reqwest client of its own that follows no
//! redirect, and the signing keys from `jwks_uri`, cached for [`KEYS_TTL`].
//!
//! Every URL of the provider must be HTTPS, or plain HTTP to the loopback interface
//! ([`endpoint_url_allowed`]). Answers are read up to [`MAX_BODY`].

use etx_identity_core::oidc::{JwkSet, OidcProvider, ProviderError, endpoint_url_allowed};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardRevocableToken,
    StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long the provider's metadata is reused.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);
/// How long the provider's signing keys are reused (a token naming an unknown key fetches them
/// again at once).
pub const KEYS_TTL: Duration = Duration::from_secs(600);
/// Least time between two fetches of the keys forced by unknown key ids.
pub const MIN_FORCED_REFRESH: Duration = Duration::from_secs(10);
/// Largest answer read from the provider.
pub const MAX_BODY: usize = 1024 * 1024;
/// How long one call to the provider may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The hub as a client of the provider.
#[derive(Clone)]
pub struct OidcClientConfig {
    /// The issuer identifier (HTTPS, or loopback HTTP).
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret; `None` for a public client (PKCE only).
    pub client_secret: Option<Zeroizing<String>>,
    /// The hub's callback URL as registered at the provider.
    pub redirect_uri: String,
    /// The scopes asked for (`openid` among them).
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for OidcClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClientConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The fields of the provider's metadata the hub uses.
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

/// The ID token of a token response (OpenID Connect Core §3.1.3.3).
#[derive(Debug, Clone, Deserialize, Serialize)]
struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type TokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

#[derive(Debug, Default)]
struct KeyCache {
    keys: Option<(Arc<JwkSet>, Instant)>,
    last_forced: Option<Instant>,
}

/// The provider over HTTP.
#[derive(Debug)]
pub struct HttpOidcProvider {
    cfg: OidcClientConfig,
    http: reqwest::Client,
    metadata: Mutex<Option<(Metadata, Instant)>>,
    keys: Mutex<KeyCache>,
}

/// Why an HTTP call of the oauth2 crate failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("request failed: {0}")]
    Send(#[from] reqwest::Error),
    #[error("the provider answered {0}")]
    ServerError(u16),
    #[error("answer larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("bad answer: {0}")]
    Http(#[from] oauth2::http::Error),
}

fn invalid(what: impl std::fmt::Display) -> ProviderError {
    ProviderError::Invalid(anyhow::anyhow!("{what}"))
}

/// The body, at most [`MAX_BODY`] bytes.
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, CallError> {
    if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(CallError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(CallError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sends a request built by the oauth2 crate; a server error is a failure of the call (the
/// provider is unavailable), not an OAuth answer.
async fn send(http: reqwest::Client, req: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, CallError> {
    let (parts, body) = req.into_parts();
    let resp = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(CallError::ServerError(status.as_u16()));
    }
    let headers = resp.headers().clone();
    let body = read_capped(resp).await?;
    let mut out = oauth2::http::Response::builder().status(status).body(body)?;
    *out.headers_mut() = headers;
    Ok(out)
}

impl HttpOidcProvider {
    /// The provider of `cfg`, reached with a client of its own (no redirects, [`CALL_TIMEOUT`]).
    /// `Err` when a URL of `cfg` is not HTTPS (or loopback HTTP) or the client cannot be built.
    pub fn new(cfg: OidcClientConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            endpoint_url_allowed(&cfg.issuer),
            "oidc.issuer must be an https:// URL (http:// only to the loopback interface)"
        );
        anyhow::ensure!(
            endpoint_url_allowed(&cfg.redirect_uri),
            "oidc.redirect_uri must be an https:// URL (http:// only to the loopback interface)"
        );
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(CALL_TIMEOUT)
            .build()?;
        Ok(Self {
            cfg,
            http,
            metadata: Mutex::new(None),
            keys: Mutex::new(KeyCache::default()),
        })
    }

    /// GETs a JSON document of the provider.
    async fn get(&self, url: &str) -> Result<Vec<u8>, ProviderError> {
        if !endpoint_url_allowed(url) {
            return Err(invalid("a provider URL is neither https:// nor loopback http://"));
        }
        let resp = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.into()))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(anyhow::anyhow!(
                "{url} answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(invalid(format_args!("{url} answered {status}")));
        }
        read_capped(resp).await.map_err(|e| match e {
            CallError::TooLarge => invalid(e),
            e => ProviderError::Unavailable(e.into()),
        })
    }

    /// The provider's metadata, fetched at most once per [`METADATA_TTL`].
    async fn metadata(&self) -> Result<Metadata, ProviderError> {
        let cached = self
            .metadata
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some((m, at)) = &cached
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.cfg.issuer.trim_end_matches('/')
        );
        let fetched = match (self.get(&url).await, cached) {
            (Ok(body), _) => body,
            (Err(ProviderError::Unavailable(e)), Some((stale, _))) => {
                tracing::warn!(error = %e, "OIDC metadata not refreshed; the cached copy is used");
                return Ok(stale);
            }
            (Err(e), _) => return Err(e),
        };
        let m: Metadata =
            serde_json::from_slice(&fetched).map_err(|e| invalid(format_args!("metadata: {e}")))?;
        // OpenID Connect Discovery §4.3: the document must be the configured issuer's.
        if m.issuer != self.cfg.issuer {
            return Err(invalid("the metadata's issuer is not the configured issuer"));
        }
        for url in [&m.authorization_endpoint, &m.token_endpoint, &m.jwks_uri] {
            if !endpoint_url_allowed(url) {
                return Err(invalid(
                    "an endpoint in the metadata is neither https:// nor loopback http://",
                ));
            }
        }
        if m.code_challenge_methods_supported
            .as_ref()
            .is_some_and(|methods| !methods.iter().any(|x| x == "S256"))
        {
            return Err(invalid("the provider does not support PKCE S256"));
        }
        *self.metadata.lock().unwrap_or_else(PoisonError::into_inner) = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    fn oauth_client(&self, m: &Metadata) -> Result<OAuthClient, ProviderError> {
        // client_secret_basic is the default of RFC 6749 and OpenID Connect; _post only when the
        // provider says it supports that and not _basic.
        let auth_type = match &m.token_endpoint_auth_methods_supported {
            Some(methods)
                if !methods.iter().any(|x| x == "client_secret_basic")
                    && methods.iter().any(|x| x == "client_secret_post") =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        let mut client = oauth2::Client::new(ClientId::new(self.cfg.client_id.clone()))
            .set_auth_uri(AuthUrl::new(m.authorization_endpoint.clone()).map_err(invalid)?)
            .set_token_uri(TokenUrl::new(m.token_endpoint.clone()).map_err(invalid)?)
            .set_redirect_uri(RedirectUrl::new(self.cfg.redirect_uri.clone()).map_err(invalid)?)
            .set_auth_type(auth_type);
        if let Some(secret) = &self.cfg.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.to_string()));
        }
        Ok(client)
    }

    async fn fetch_keys(&self) -> Result<Arc<JwkSet>, ProviderError> {
        let m = self.metadata().await?;
        let body = self.get(&m.jwks_uri).await?;
        let set = JwkSet::parse(&body).map_err(invalid)?;
        if set.is_empty() {
            tracing::warn!("the OIDC provider's key set has no usable signing key");
        }
        Ok(Arc::new(set))
    }
}

#[async_trait::async_trait]
impl OidcProvider for HttpOidcProvider {
    async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<String, ProviderError> {
        let m = self.metadata().await?;
        let client = self.oauth_client(&m)?;
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(pkce_verifier.to_owned()));
        let (url, _) = client
            .authorize_url(|| CsrfToken::new(state.to_owned()))
            .add_scopes(self.cfg.scopes.iter().map(|s| Scope::new(s.clone())))
            .add_extra_param("nonce", nonce)
            .set_pkce_challenge(challenge)
            .url();
        Ok(url.into())
    }

    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<Zeroizing<String>, ProviderError> {
        let m = self.metadata().await?;
        let client = self.oauth_client(&m)?;
        let http = self.http.clone();
        let call = move |req: oauth2::HttpRequest| send(http.clone(), req);
        let answer = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&call)
            .await;
        match answer {
            Ok(t) => t
                .extra_fields()
                .id_token
                .clone()
                .filter(|t| !t.is_empty())
                .map(Zeroizing::new)
                .ok_or_else(|| invalid("the token response has no id_token")),
            Err(RequestTokenError::ServerResponse(e)) => {
                Err(ProviderError::Refused(e.error().as_ref().to_owned()))
            }
            Err(RequestTokenError::Request(CallError::TooLarge)) => {
                Err(invalid("the token response is too large"))
            }
            Err(RequestTokenError::Request(e)) => Err(ProviderError::Unavailable(e.into())),
            Err(RequestTokenError::Parse(e, _)) => Err(invalid(format_args!("token response: {e}"))),
            Err(RequestTokenError::Other(e)) => Err(invalid(format_args!("token response: {e}"))),
        }
    }

    async fn signing_keys(&self, refresh: bool) -> Result<Arc<JwkSet>, ProviderError> {
        let (cached, recently_forced) = {
            let cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            (
                cache.keys.clone(),
                cache
                    .last_forced
                    .is_some_and(|t| t.elapsed() < MIN_FORCED_REFRESH),
            )
        };
        match &cached {
            Some((keys, at)) if !refresh && at.elapsed() < KEYS_TTL => return Ok(keys.clone()),
            Some((keys, _)) if refresh && recently_forced => return Ok(keys.clone()),
            _ => {}
        }
        let fetched = match (self.fetch_keys().await, cached) {
            (Ok(keys), _) => keys,
            (Err(ProviderError::Unavailable(e)), Some((stale, _))) if !refresh => {
                tracing::warn!(error = %e, "OIDC signing keys not refreshed; the cached set is used");
                return Ok(stale);
            }
            (Err(e), _) => return Err(e),
        };
        let mut cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        cache.keys = Some((fetched.clone(), Instant::now()));
        if refresh {
            cache.last_forced = Some(Instant::now());
        }
        Ok(fetched)
    }
}
