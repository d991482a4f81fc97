//! The HTTP client of identity's internal API, implementing [`IdentityApi`] for a gateway
//! that runs in another process (distributed mode): API keys, session tokens and OAuth2 access
//! tokens are checked by identity over the private network, with a principal signed as the
//! gateway.

use crate::http::oauth::AuthenticateTokenIn;
use crate::http::{AuthenticateIn, AuthenticateOut, AuthenticateSessionIn};
use etx_http_kit::{PRINCIPAL_HEADER, Principal, PrincipalSigner};
use etx_identity_core::{AuthError, Caller, IdentityApi};

/// Calls identity over HTTP, presenting a principal signed as the gateway.
#[derive(Debug, Clone)]
pub struct HttpIdentityClient {
    base: String,
    http: reqwest::Client,
    signer: PrincipalSigner,
}

impl HttpIdentityClient {
    /// A client of the identity service at `base` (e.g. `http://10.0.0.5:8081`).
    pub fn new(base: &str, http: reqwest::Client, signer: PrincipalSigner) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            signer,
        }
    }

    async fn call<B: serde::Serialize + Sync>(&self, path: &str, body: &B) -> Result<Caller, AuthError> {
        match self.post::<B, AuthenticateOut>(path, body).await? {
            AuthenticateOut::Ok { caller } => Ok(caller),
            AuthenticateOut::Refused { reason } => Err(reason),
        }
    }

    /// Posts `body` to an internal route and reads its JSON answer; `Unavailable` when identity
    /// cannot be reached or answers anything else.
    async fn post<B: serde::Serialize + Sync, O: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<O, AuthError> {
        let me = Principal {
            org_id: etx_domain::OrgId::from_uuid(uuid::Uuid::nil()),
            system_id: None,
            key_id: None,
            subject: "service:gateway".into(),
            roles: vec!["service".into()],
            scopes: Vec::new(),
            client_ip: None,
        };
        let resp = self
            .http
            .post(format!("{}/internal/v1/{path}", self.base))
            .header(PRINCIPAL_HEADER, self.signer.sign(&me))
            .json(body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "identity unreachable");
                AuthError::Unavailable
            })?;
        if !resp.status().is_success() {
            tracing::warn!(status = %resp.status(), "identity refused the authentication call");
            return Err(AuthError::Unavailable);
        }
        resp.json::<O>().await.map_err(|e| {
            tracing::warn!(error = %e, "identity answered an unreadable body");
            AuthError::Unavailable
        })
    }
}

#[async_trait::async_trait]
impl IdentityApi for HttpIdentityClient {
    async fn authenticate_api_key(
        &self,
        presented: &str,
        client_ip: Option<&str>,
    ) -> Result<Caller, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        self.call(
            "authenticate",
            &AuthenticateIn {
                api_key: presented.to_owned(),
                client_ip: client_ip.map(str::to_owned),
            },
        )
        .await
    }

    async fn authenticate_session(&self, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        self.call(
            "sessions/authenticate",
            &AuthenticateSessionIn {
                token: token.to_owned(),
            },
        )
        .await
    }

    async fn authenticate_access_token(&self, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        self.call(
            "tokens/authenticate",
            &AuthenticateTokenIn {
                token: token.to_owned(),
            },
        )
        .await
    }
}
