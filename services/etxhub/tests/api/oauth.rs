//! OAuth2 for connected systems (R-SEC-1, issue 4 §4): a system registers an OAuth client, gets
//! short-lived access tokens by the client-credentials grant (RFC 6749 §4.4) with HTTP Basic or
//! body authentication — also through a standard client library, the `oauth2` crate — and uses
//! them as `Authorization: Bearer` with the scopes they carry; errors are RFC 6749 §5.2 JSON;
//! expired, revoked (RFC 7009) and deleted clients' tokens are refused; tokens, API keys and
//! client secrets are never taken for one another.

use crate::both_backends;
use crate::helpers::*;
use crate::users::enrolled;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use etx_identity::store::oauth::entities::oauth_access_token;
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use reqwest::Response;
use sea_orm::EntityTrait;
use sea_orm::sea_query::Expr;
use serde_json::{Value, json};

const TOKEN: &str = "/api/v1/oauth/token";
const REVOKE: &str = "/api/v1/oauth/revoke";
const FORM: &str = "application/x-www-form-urlencoded";

/// An OAuth client's credentials.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) id: String,
    pub(crate) secret: String,
}

/// Registers a client with `key`'s system and `scopes` (absent: the default).
pub(crate) async fn register(app: &TestApp, key: &str, scopes: Option<&[&str]>) -> Client {
    let body = match scopes {
        Some(s) => json!({ "scopes": s }),
        None => json!({}),
    };
    let resp = app
        .client
        .post(app.url("/api/v1/oauth/clients"))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["token_endpoint"], TOKEN);
    assert_eq!(v["status"], "active");
    Client {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: v["client_secret"].as_str().unwrap().to_owned(),
    }
}

/// POSTs a form to `path`, with `basic` credentials if given.
async fn form(app: &TestApp, path: &str, body: &str, basic: Option<&Client>) -> Response {
    let mut r = app
        .client
        .post(app.url(path))
        .header("content-type", FORM)
        .body(body.to_owned());
    if let Some(c) = basic {
        r = r.header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{}:{}", c.id, c.secret))),
        );
    }
    r.send().await.unwrap()
}

/// A token for `c` by HTTP Basic with `scope` (absent: all of the client's).
pub(crate) async fn token(app: &TestApp, c: &Client, scope: Option<&str>) -> String {
    let body = match scope {
        Some(s) => format!(
            "grant_type=client_credentials&scope={}",
            s.replace(':', "%3A").replace(' ', "+")
        ),
        None => "grant_type=client_credentials".into(),
    };
    let resp = form(app, TOKEN, &body, Some(c)).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

/// Sends `method path` with `Authorization: Bearer <t>`.
async fn bearer(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    t: &str,
    body: Option<Value>,
) -> Response {
    let mut r = app
        .client
        .request(method, app.url(path))
        .header("authorization", format!("Bearer {t}"));
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

/// Asserts an RFC 6749 §5.2 error answer.
async fn oauth_error(resp: Response, status: u16, error: &str) -> Value {
    assert_eq!(resp.status(), status, "expected {error}");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "RFC 6749 errors are application/json"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    if status == 401 {
        assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"etxhub\"");
    }
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], error, "{v}");
    assert!(v["error_description"].is_string());
    v
}

async fn problem(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "expected {code}");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    p
}

/// The HTTP of the `oauth2` crate, through the test's reqwest 0.13 client (the crate's own
/// adapter is for reqwest 0.12).
fn oauth2_http(
    client: reqwest::Client,
) -> impl Fn(
    oauth2::HttpRequest,
) -> std::pin::Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, std::io::Error>>>> {
    move |req: oauth2::HttpRequest| {
        let client = client.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(std::io::Error::other)?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.map_err(std::io::Error::other)?.to_vec();
            let mut out = oauth2::http::Response::builder()
                .status(status)
                .body(body)
                .map_err(std::io::Error::other)?;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}

both_backends!(
    a_system_gets_tokens_by_basic_post_and_a_standard_client_and_uses_their_scopes,
    |app: TestApp| async move {
        let c = register(&app, &app.key_a, None).await;
        assert!(c.secret.starts_with("etxcs_"));

        // client_secret_basic: RFC 6749 §5.1 answer, not cached.
        let resp = form(
            &app,
            TOKEN,
            "grant_type=client_credentials&scope=records%3Aread",
            Some(&c),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let t: Value = resp.json().await.unwrap();
        assert_eq!(t["token_type"], "Bearer");
        assert_eq!(t["expires_in"], 600);
        assert_eq!(t["scope"], "records:read");
        let read_only = t["access_token"].as_str().unwrap().to_owned();
        assert!(read_only.starts_with("etxat_") && read_only.len() == 62);

        // client_secret_post, no scope asked: all of the client's.
        let resp = form(
            &app,
            TOKEN,
            &format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                c.id, c.secret
            ),
            None,
        )
        .await;
        assert_eq!(resp.status(), 200);
        let t: Value = resp.json().await.unwrap();
        assert_eq!(t["scope"], "records:write records:read schemas:read keys:manage");

        // A standard OAuth2 client library gets a token too, by Basic and by post.
        let http = oauth2_http(app.client.clone());
        for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
            let client = BasicClient::new(ClientId::new(c.id.clone()))
                .set_client_secret(ClientSecret::new(c.secret.clone()))
                .set_auth_type(auth)
                .set_token_uri(TokenUrl::new(app.url(TOKEN)).unwrap());
            let got = client
                .exchange_client_credentials()
                .add_scope(Scope::new("records:write".into()))
                .request_async(&http)
                .await
                .unwrap();
            assert_eq!(got.expires_in(), Some(std::time::Duration::from_secs(600)));
            assert_eq!(
                got.scopes()
                    .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
                Some(vec!["records:write".to_owned()])
            );
            assert!(got.access_token().secret().starts_with("etxat_"));
        }
        // The library reads our errors as RFC 6749 errors.
        let wrong = BasicClient::new(ClientId::new(c.id.clone()))
            .set_client_secret(ClientSecret::new(wrong_secret(&c.secret)))
            .set_token_uri(TokenUrl::new(app.url(TOKEN)).unwrap());
        match wrong.exchange_client_credentials().request_async(&http).await {
            Err(oauth2::RequestTokenError::ServerResponse(e)) => {
                assert_eq!(e.error(), &oauth2::basic::BasicErrorResponseType::InvalidClient);
            }
            other => panic!("expected invalid_client, got {other:?}"),
        }

        // The token of the library submits; the read-only token reads it back, but may not
        // submit.
        let client = BasicClient::new(ClientId::new(c.id.clone()))
            .set_client_secret(ClientSecret::new(c.secret.clone()))
            .set_token_uri(TokenUrl::new(app.url(TOKEN)).unwrap());
        let writer = client
            .exchange_client_credentials()
            .add_scope(Scope::new("records:write".into()))
            .request_async(&http)
            .await
            .unwrap();
        let writer = writer.access_token().secret().to_owned();
        let resp = bearer(
            &app,
            reqwest::Method::POST,
            "/api/v1/records",
            &writer,
            Some(stats_record(5.0, None)),
        )
        .await;
        assert_eq!(resp.status(), 202);
        let receipt: Value = resp.json().await.unwrap();
        let record = receipt["record_ids"][0].as_str().unwrap().to_owned();
        let path = format!("/api/v1/records/{record}");
        let resp = bearer(&app, reqwest::Method::GET, &path, &read_only, None).await;
        assert_eq!(resp.status(), 200);
        let resp = bearer(
            &app,
            reqwest::Method::POST,
            "/api/v1/records",
            &read_only,
            Some(stats_record(6.0, None)),
        )
        .await;
        let p = problem(resp, 403, "insufficient_scope").await;
        assert!(p["detail"].as_str().unwrap().contains("records:write"));
        let resp = bearer(&app, reqwest::Method::GET, &path, &writer, None).await;
        problem(resp, 403, "insufficient_scope").await;
        // The record is the organisation's, whichever credential submitted it.
        assert_eq!(app.get(&path, &app.key_a).await.status(), 200);
        assert_eq!(app.get(&path, &app.key_b).await.status(), 404);

        // The organisation lists its client, without the secret.
        let list: Value = app
            .get("/api/v1/oauth/clients", &app.key_a)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["client_id"], c.id.as_str());
        assert!(list[0].get("client_secret").is_none());
        assert!(!list.to_string().contains(&c.secret));
        let other: Value = app
            .get("/api/v1/oauth/clients", &app.key_b)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(other, json!([]));
    }
);

both_backends!(
    refused_token_requests_follow_rfc_6749_and_never_say_whether_a_client_exists,
    |app: TestApp| async move {
        let c = register(&app, &app.key_a, Some(&["records:read"])).await;
        let grant = "grant_type=client_credentials";

        // A wrong secret and an unknown client: the same 401, by Basic and by post.
        let wrong = Client {
            id: c.id.clone(),
            secret: register(&app, &app.key_a, None).await.secret,
        };
        let unknown = Client {
            id: uuid::Uuid::now_v7().to_string(),
            secret: c.secret.clone(),
        };
        let a = oauth_error(
            form(&app, TOKEN, grant, Some(&wrong)).await,
            401,
            "invalid_client",
        )
        .await;
        let b = oauth_error(
            form(&app, TOKEN, grant, Some(&unknown)).await,
            401,
            "invalid_client",
        )
        .await;
        assert_eq!(a, b);
        let post = format!(
            "{grant}&client_id={}&client_secret={}",
            unknown.id, unknown.secret
        );
        let p = oauth_error(form(&app, TOKEN, &post, None).await, 401, "invalid_client").await;
        assert_eq!(a, p);
        oauth_error(form(&app, TOKEN, grant, None).await, 401, "invalid_client").await;

        // Grant type, request shape and scopes.
        oauth_error(
            form(&app, TOKEN, "grant_type=password&username=a&password=b", Some(&c)).await,
            400,
            "unsupported_grant_type",
        )
        .await;
        oauth_error(
            form(&app, TOKEN, "scope=records%3Aread", Some(&c)).await,
            400,
            "invalid_request",
        )
        .await;
        oauth_error(
            form(
                &app,
                TOKEN,
                &format!("{grant}&grant_type=client_credentials"),
                Some(&c),
            )
            .await,
            400,
            "invalid_request",
        )
        .await;
        let both = format!("{grant}&client_secret={}", c.secret);
        oauth_error(form(&app, TOKEN, &both, Some(&c)).await, 400, "invalid_request").await;
        let json_body = app
            .client
            .post(app.url(TOKEN))
            .json(&json!({"grant_type": "client_credentials", "client_id": c.id, "client_secret": c.secret}))
            .send()
            .await
            .unwrap();
        oauth_error(json_body, 400, "invalid_request").await;
        oauth_error(
            form(&app, TOKEN, &format!("{grant}&scope=records%3Awrite"), Some(&c)).await,
            400,
            "invalid_scope",
        )
        .await;
        oauth_error(
            form(
                &app,
                TOKEN,
                &format!("{grant}&scope=records%3Aread+admin"),
                Some(&c),
            )
            .await,
            400,
            "invalid_scope",
        )
        .await;
        // Narrowing within the client's scopes is fine.
        assert!(!token(&app, &c, Some("records:read")).await.is_empty());

        // Other methods (with a credential, or the gateway answers 401 first): 405 with Allow.
        let get = app.get(TOKEN, &app.key_a).await;
        assert_eq!(get.status(), 405);
        assert_eq!(get.headers()["allow"], "POST");
    }
);

both_backends!(
    tokens_api_keys_and_client_secrets_are_never_taken_for_one_another,
    |app: TestApp| async move {
        let c = register(&app, &app.key_a, None).await;
        let t = token(&app, &c, None).await;
        let me = "/api/v1/organisations/me";
        assert_eq!(
            bearer(&app, reqwest::Method::GET, me, &t, None).await.status(),
            200
        );

        // A token is not an API key: not in X-API-Key, not as `Authorization: ApiKey`.
        problem(app.get(me, &t).await, 401, "invalid_credentials").await;
        let as_apikey = app
            .client
            .get(app.url(me))
            .header("authorization", format!("ApiKey {t}"))
            .send()
            .await
            .unwrap();
        problem(as_apikey, 401, "invalid_credentials").await;
        // Nor is a client secret either of them.
        problem(
            bearer(&app, reqwest::Method::GET, me, &c.secret, None).await,
            401,
            "invalid_credentials",
        )
        .await;
        problem(app.get(me, &c.secret).await, 401, "invalid_credentials").await;
        // And an API key is no client secret, nor a token to revoke.
        let key_as_secret = Client {
            id: c.id.clone(),
            secret: app.key_a.clone(),
        };
        oauth_error(
            form(&app, TOKEN, "grant_type=client_credentials", Some(&key_as_secret)).await,
            401,
            "invalid_client",
        )
        .await;
        let revoke_key = format!("token={}", app.key_a);
        assert_eq!(form(&app, REVOKE, &revoke_key, Some(&c)).await.status(), 200);
        assert_eq!(app.get(me, &app.key_a).await.status(), 200);
        // The token still works after all this.
        assert_eq!(
            bearer(&app, reqwest::Method::GET, me, &t, None).await.status(),
            200
        );
    }
);

both_backends!(
    revoked_tokens_and_deleted_clients_stop_working_at_once,
    |app: TestApp| async move {
        let c = register(&app, &app.key_a, None).await;
        let other = register(&app, &app.key_a, None).await;
        let me = "/api/v1/organisations/me";
        let t1 = token(&app, &c, None).await;
        let t2 = token(&app, &c, None).await;
        // Both are now in the gateway's cache.
        assert_eq!(
            bearer(&app, reqwest::Method::GET, me, &t1, None).await.status(),
            200
        );
        assert_eq!(
            bearer(&app, reqwest::Method::GET, me, &t2, None).await.status(),
            200
        );

        // RFC 7009: another client cannot revoke it; unknown tokens are fine; its own client
        // revokes it, effective at once.
        let revoke_t1 = format!("token={t1}&token_type_hint=access_token");
        assert_eq!(form(&app, REVOKE, &revoke_t1, Some(&other)).await.status(), 200);
        assert_eq!(
            bearer(&app, reqwest::Method::GET, me, &t1, None).await.status(),
            200
        );
        assert_eq!(
            form(&app, REVOKE, "token=etxat_unknown", Some(&c)).await.status(),
            200
        );
        oauth_error(form(&app, REVOKE, &revoke_t1, None).await, 401, "invalid_client").await;
        oauth_error(
            form(&app, REVOKE, "token_type_hint=access_token", Some(&c)).await,
            400,
            "invalid_request",
        )
        .await;
        let resp = form(
            &app,
            REVOKE,
            &format!("{revoke_t1}&client_id={}&client_secret={}", c.id, c.secret),
            None,
        )
        .await;
        assert_eq!(resp.status(), 200);
        problem(
            bearer(&app, reqwest::Method::GET, me, &t1, None).await,
            401,
            "revoked_credentials",
        )
        .await;
        assert_eq!(
            bearer(&app, reqwest::Method::GET, me, &t2, None).await.status(),
            200
        );

        // Another organisation cannot delete the client (404); a system_admin of its own can,
        // and then every token of it is refused and the client gets no more.
        let del = |key: String, id: String| {
            let client = app.client.clone();
            let url = app.url(&format!("/api/v1/oauth/clients/{id}"));
            async move { client.delete(url).header("x-api-key", key).send().await.unwrap() }
        };
        problem(del(app.key_b.clone(), c.id.clone()).await, 404, "not_found").await;
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "quan.tri.oauth", "system_admin").await;
        let resp = app
            .client
            .delete(app.url(&format!("/api/v1/oauth/clients/{}", c.id)))
            .header("cookie", &admin.cookie)
            .header("x-csrf-token", &admin.csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        problem(
            bearer(&app, reqwest::Method::GET, me, &t2, None).await,
            401,
            "revoked_credentials",
        )
        .await;
        oauth_error(
            form(&app, TOKEN, "grant_type=client_credentials", Some(&c)).await,
            401,
            "invalid_client",
        )
        .await;
        problem(
            del(app.key_a.clone(), uuid::Uuid::now_v7().to_string()).await,
            404,
            "not_found",
        )
        .await;
        let list: Value = app
            .get("/api/v1/oauth/clients", &app.key_a)
            .await
            .json()
            .await
            .unwrap();
        let deleted = list
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["client_id"] == c.id.as_str())
            .unwrap();
        assert_eq!(deleted["status"], "revoked");
        // The other client is untouched.
        let t3 = token(&app, &other, None).await;
        assert_eq!(
            bearer(&app, reqwest::Method::GET, me, &t3, None).await.status(),
            200
        );

        // An administrator registers a client by naming the system; without it, 400.
        let systems: Value = app.get("/api/v1/systems", &app.key_a).await.json().await.unwrap();
        let system_id = systems[0]["id"].as_str().unwrap();
        let post = |body: Value| {
            app.client
                .post(app.url("/api/v1/oauth/clients"))
                .header("cookie", &admin.cookie)
                .header("x-csrf-token", &admin.csrf)
                .json(&body)
                .send()
        };
        problem(post(json!({})).await.unwrap(), 400, "invalid_parameter").await;
        let resp = post(json!({"system_id": system_id, "scopes": ["schemas:read"]}))
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["scopes"], json!(["schemas:read"]));
        problem(
            post(json!({"system_id": uuid::Uuid::now_v7()})).await.unwrap(),
            404,
            "not_found",
        )
        .await;
    }
);

both_backends!(an_expired_token_is_refused, |app: TestApp| async move {
    let c = register(&app, &app.key_a, None).await;
    let t = token(&app, &c, None).await;
    // Its expiry moved into the past in the store (tokens live at least a minute).
    let db = app.db_conn().await;
    oauth_access_token::Entity::update_many()
        .col_expr(
            oauth_access_token::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::TimeDelta::seconds(1)),
        )
        .exec(&db)
        .await
        .unwrap();
    let me = "/api/v1/organisations/me";
    problem(
        bearer(&app, reqwest::Method::GET, me, &t, None).await,
        401,
        "invalid_credentials",
    )
    .await;
    // A new token works.
    let fresh = token(&app, &c, None).await;
    assert_eq!(
        bearer(&app, reqwest::Method::GET, me, &fresh, None)
            .await
            .status(),
        200
    );
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_client_authentication_counts_against_the_address_limit() {
    let app = TestApp::spawn_with("sqlite", |c| {
        c.rate_limits.per_ip = etxhub::config::RateCfg { rate: 0.01, burst: 5 };
    })
    .await;
    let c = register(&app, &app.key_a, None).await;
    let wrong = Client {
        id: c.id.clone(),
        secret: wrong_secret(&c.secret),
    };
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            form(&app, TOKEN, "grant_type=client_credentials", Some(&wrong))
                .await
                .status()
                .as_u16(),
        );
    }
    // One request went to registering the client.
    assert_eq!(statuses[..4], [401; 4], "{statuses:?}");
    assert!(statuses[4..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_live_as_long_as_the_configuration_says() {
    // A second server on the same database with another lifetime than the default.
    let app = TestApp::spawn("sqlite").await;
    let c = register(&app, &app.key_a, None).await;
    let mut cfg = app.cfg.clone();
    cfg.listen = "127.0.0.1:0".into();
    cfg.oauth.token_ttl_secs = 60;
    let base = serve_all(&cfg).await;
    let resp = app
        .client
        .post(format!("{base}{TOKEN}"))
        .header("content-type", FORM)
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{}:{}", c.id, c.secret))),
        )
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["expires_in"], 60);
}

/// `secret` with its last character changed (always to another one: the last character is
/// random, so replacing it with a fixed one gave the right secret once in 64 runs).
fn wrong_secret(secret: &str) -> String {
    let (head, last) = secret.split_at(secret.len() - 1);
    format!("{head}{}", if last == "A" { "B" } else { "A" })
}
