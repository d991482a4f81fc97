//! Sign-in through an external OpenID Connect provider (issue 4 §4, R-SEC-5, R-SEC-6), end to end
//! against a local provider written here: discovery, keys, an authorization endpoint that
//! approves at once, and a token endpoint that authenticates the client, checks the PKCE
//! verifier against the S256 challenge it recorded and signs ID tokens with ES256 (or RS256,
//! with a key from `openssl`). The provider misbehaves on demand, one defect per sign-in.
//!
//! The browser is a reqwest client that follows no redirect: the tests walk login → provider →
//! callback themselves and look at every `Location` and `Set-Cookie`.

use crate::both_backends;
use crate::helpers::*;
use crate::users::{Session, add_user, call, enrolled, now};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::{Method, Response};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const CLIENT_ID: &str = "etxhub-test";
const CLIENT_SECRET: &str = "s3cret-of-the-hub";
/// Where the provider sends the browser back. The hub's port is only known once it runs, so the
/// tests call the hub's own address with the code and state they find here.
const REDIRECT_URI: &str = "https://127.0.0.1/api/v1/auth/oidc/callback";

/// What the provider gets wrong in the next ID tokens (or token answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defect {
    None,
    WrongAudience,
    WrongIssuer,
    Expired,
    WrongNonce,
    BadSignature,
    AlgNone,
    Hs256,
    UnknownKid,
    /// The provider recorded another challenge, so the hub's verifier does not match it.
    WrongVerifier,
    NoIdToken,
}

/// An authorization the provider granted, waiting for its code to be exchanged.
struct Grant {
    challenge: String,
    nonce: String,
    redirect_uri: String,
}

struct IdpState {
    grants: HashMap<String, Grant>,
    defect: Defect,
    username: String,
    amr: Vec<String>,
    rs256: bool,
    /// Publish the second EC key ("ec-2") and sign with it: a key rotation.
    rotated: bool,
    jwks_fetches: u32,
    token_calls: u32,
    /// The query of the last authorization request.
    last_authorize: HashMap<String, String>,
}

struct Idp {
    issuer: String,
    ec: EcdsaKeyPair,
    ec2: EcdsaKeyPair,
    rsa: RsaKeyPair,
    state: Mutex<IdpState>,
}

/// The local provider, as the tests steer it.
#[derive(Clone)]
pub(crate) struct Provider {
    idp: Arc<Idp>,
}

fn ec_key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn rsa_key() -> RsaKeyPair {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-outform",
            "DER",
        ])
        .output()
        .expect("the RS256 test needs the openssl command");
    assert!(out.status.success());
    // OpenSSL 3.0 writes PKCS#1 DER here, other versions PKCS#8.
    RsaKeyPair::from_pkcs8(&out.stdout)
        .or_else(|_| RsaKeyPair::from_der(&out.stdout))
        .unwrap()
}

fn ec_jwk(k: &EcdsaKeyPair, kid: &str) -> Value {
    let p = k.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

impl Idp {
    fn jwks(&self) -> Value {
        let st = self.state.lock().unwrap();
        let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(self.rsa.public());
        let mut keys = vec![
            ec_jwk(&self.ec, "ec-1"),
            json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "rsa-1",
                "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e)}),
            // Keys the hub must ignore: a symmetric one and an encryption key.
            json!({"kty": "oct", "kid": "mac", "k": URL_SAFE_NO_PAD.encode(CLIENT_SECRET)}),
        ];
        let mut enc = ec_jwk(&self.ec2, "enc-1");
        enc["use"] = json!("enc");
        keys.push(enc);
        if st.rotated {
            keys.push(ec_jwk(&self.ec2, "ec-2"));
        }
        json!({ "keys": keys })
    }

    /// The ID token for `grant`, with the current defect.
    fn id_token(&self, grant: &Grant) -> String {
        let st = self.state.lock().unwrap();
        let t = now() as i64;
        let mut claims = json!({
            "iss": self.issuer, "aud": CLIENT_ID, "sub": format!("sub-{}", st.username),
            "exp": t + 300, "iat": t, "auth_time": t, "nonce": grant.nonce,
            "preferred_username": st.username, "amr": st.amr,
        });
        match st.defect {
            Defect::WrongAudience => claims["aud"] = json!("another-client"),
            Defect::WrongIssuer => claims["iss"] = json!("https://idp.evil.example"),
            Defect::Expired => {
                claims["exp"] = json!(t - 120);
                claims["iat"] = json!(t - 600);
            }
            Defect::WrongNonce => claims["nonce"] = json!("not-the-nonce-of-this-sign-in"),
            _ => {}
        }
        let rng = SystemRandom::new();
        let (alg, kid) = match (st.defect, st.rs256, st.rotated) {
            (Defect::AlgNone, ..) => {
                return format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims));
            }
            (Defect::Hs256, ..) => {
                let input = format!("{}.{}", b64(&json!({"alg": "HS256", "kid": "mac"})), b64(&claims));
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, CLIENT_SECRET.as_bytes());
                let tag = ring::hmac::sign(&key, input.as_bytes());
                return format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
            }
            (Defect::UnknownKid, ..) => ("ES256", "ec-3"),
            (_, true, _) => ("RS256", "rsa-1"),
            (_, false, true) => ("ES256", "ec-2"),
            _ => ("ES256", "ec-1"),
        };
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": alg, "kid": kid, "typ": "JWT"})),
            b64(&claims)
        );
        let sig = if alg == "RS256" {
            let mut sig = vec![0u8; self.rsa.public().modulus_len()];
            self.rsa
                .sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                .unwrap();
            sig
        } else {
            // A bad signature is one by another key under the published kid "ec-1".
            let key = match (st.defect, kid) {
                (Defect::BadSignature, _) | (_, "ec-2" | "ec-3") => &self.ec2,
                _ => &self.ec,
            };
            key.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec()
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

async fn discovery(idp: web::Data<Idp>) -> HttpResponse {
    let i = &idp.issuer;
    HttpResponse::Ok().json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

async fn jwks(idp: web::Data<Idp>) -> HttpResponse {
    idp.state.lock().unwrap().jwks_fetches += 1;
    HttpResponse::Ok().json(idp.jwks())
}

/// Approves at once and sends the browser back with a code.
async fn authorize(idp: web::Data<Idp>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let q = q.into_inner();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("client_id") != CLIENT_ID
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
        || !get("scope").split(' ').any(|s| s == "openid")
        || get("nonce").is_empty()
        || get("state").is_empty()
    {
        return HttpResponse::BadRequest().body("bad authorization request");
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    let mut st = idp.state.lock().unwrap();
    let challenge = if st.defect == Defect::WrongVerifier {
        URL_SAFE_NO_PAD.encode(Sha256::digest(b"another verifier entirely, not the hub's one"))
    } else {
        get("code_challenge")
    };
    st.grants.insert(
        code.clone(),
        Grant {
            challenge,
            nonce: get("nonce"),
            redirect_uri: get("redirect_uri"),
        },
    );
    st.last_authorize = q.clone();
    let location = format!(
        "{}?code={code}&state={}&iss={}",
        get("redirect_uri"),
        get("state"),
        idp.issuer
    );
    HttpResponse::Found()
        .insert_header(("location", location))
        .finish()
}

fn oauth_error(status: u16, error: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({ "error": error }))
}

/// Authenticates the client (basic or post), then exchanges a code once, for the right
/// verifier only.
async fn token(
    idp: web::Data<Idp>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let form = form.into_inner();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    idp.state.lock().unwrap().token_calls += 1;
    let basic = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let client_ok = match basic {
        Some(pair) => pair == format!("{CLIENT_ID}:{CLIENT_SECRET}"),
        None => get("client_id") == CLIENT_ID && get("client_secret") == CLIENT_SECRET,
    };
    if !client_ok {
        return oauth_error(401, "invalid_client");
    }
    if get("grant_type") != "authorization_code" {
        return oauth_error(400, "unsupported_grant_type");
    }
    let Some(grant) = idp.state.lock().unwrap().grants.remove(&get("code")) else {
        return oauth_error(400, "invalid_grant");
    };
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
    if computed != grant.challenge || get("redirect_uri") != grant.redirect_uri {
        return oauth_error(400, "invalid_grant");
    }
    let mut answer = json!({"access_token": "at-123", "token_type": "Bearer", "expires_in": 300});
    if idp.state.lock().unwrap().defect != Defect::NoIdToken {
        answer["id_token"] = json!(idp.id_token(&grant));
    }
    HttpResponse::Ok().json(answer)
}

impl Provider {
    /// Starts the provider on a free loopback port.
    pub(crate) async fn start() -> Provider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let idp = Arc::new(Idp {
            issuer,
            ec: ec_key(),
            ec2: ec_key(),
            rsa: rsa_key(),
            state: Mutex::new(IdpState {
                grants: HashMap::new(),
                defect: Defect::None,
                username: "an.admin".into(),
                amr: vec!["pwd".into()],
                rs256: false,
                rotated: false,
                jwks_fetches: 0,
                token_calls: 0,
                last_authorize: HashMap::new(),
            }),
        });
        let data = web::Data::from(idp.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/.well-known/openid-configuration", web::get().to(discovery))
                .route("/jwks", web::get().to(jwks))
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
        })
        .workers(1)
        .shutdown_timeout(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Provider { idp }
    }

    fn issuer(&self) -> String {
        self.idp.issuer.clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut IdpState) -> T) -> T {
        f(&mut self.idp.state.lock().unwrap())
    }

    fn defect(&self, d: Defect) {
        self.with(|s| s.defect = d);
    }

    fn user(&self, username: &str, amr: &[&str]) {
        self.with(|s| {
            s.username = username.into();
            s.amr = amr.iter().map(|a| (*a).to_owned()).collect();
        });
    }
}

/// An app whose `[oidc]` points at a fresh local provider.
pub(crate) async fn with_provider(backend: &'static str, trust_provider_mfa: bool) -> (TestApp, Provider) {
    let idp = Provider::start().await;
    let issuer = idp.issuer();
    let app = TestApp::spawn_with(backend, move |c| {
        c.oidc.enabled = true;
        c.oidc.issuer = issuer;
        c.oidc.client_id = CLIENT_ID.into();
        c.oidc.client_secret = CLIENT_SECRET.to_owned().into();
        c.oidc.redirect_uri = REDIRECT_URI.into();
        c.oidc.trust_provider_mfa = trust_provider_mfa;
        c.oidc.post_login_redirect = "/app/".into();
    })
    .await;
    (app, idp)
}

async fn oidc_app(backend: &'static str) -> (TestApp, Provider) {
    with_provider(backend, false).await
}

async fn trusting_app(backend: &'static str) -> (TestApp, Provider) {
    with_provider(backend, true).await
}

/// A browser that follows no redirect and trusts the hub's certificate.
fn browser(app: &TestApp) -> reqwest::Client {
    let pem = std::fs::read(app.cfg.data_dir.join("tls/cert.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `Set-Cookie` values of a response.
fn set_cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        c.split(';')
            .next()
            .and_then(|p| p.strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    })
}

/// A started sign-in: the provider's authorization URL and the binding cookie's value.
struct Started {
    authorize_url: reqwest::Url,
    binding: String,
}

/// `GET /auth/oidc/login`: a 302 to the provider with the binding cookie.
async fn start(app: &TestApp, b: &reqwest::Client) -> Started {
    let r = b.get(app.url("/api/v1/auth/oidc/login")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&r);
    let binding = cookie_value(&cookies, "etx_oidc_binding").expect("the binding cookie");
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/api/v1/auth/oidc",
        "Max-Age=600",
    ] {
        assert!(cookies[0].split("; ").any(|a| a == attr), "{attr} in {cookies:?}");
    }
    let authorize_url = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    Started {
        authorize_url,
        binding,
    }
}

/// The provider's redirect back: code, state and iss.
struct Back {
    code: String,
    state: String,
    iss: String,
}

async fn authorize_at_provider(b: &reqwest::Client, s: &Started) -> Back {
    let r = b.get(s.authorize_url.clone()).send().await.unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
    let loc = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        format!("{}://{}{}", loc.scheme(), loc.host_str().unwrap(), loc.path()),
        REDIRECT_URI
    );
    let q: HashMap<String, String> = loc.query_pairs().into_owned().collect();
    Back {
        code: q["code"].clone(),
        state: q["state"].clone(),
        iss: q["iss"].clone(),
    }
}

/// `GET /auth/oidc/callback` as the provider's redirect brings the browser back.
async fn callback(app: &TestApp, b: &reqwest::Client, back: &Back, binding: Option<&str>) -> Response {
    let mut req = b.get(app.url("/api/v1/auth/oidc/callback")).query(&[
        ("code", back.code.as_str()),
        ("state", back.state.as_str()),
        ("iss", back.iss.as_str()),
        ("session_state", "opaque-to-the-hub"),
    ]);
    if let Some(binding) = binding {
        req = req.header("cookie", format!("etx_oidc_binding={binding}"));
    }
    req.send().await.unwrap()
}

/// The whole round: hub → provider → hub.
async fn sign_in(app: &TestApp, b: &reqwest::Client) -> Response {
    let s = start(app, b).await;
    let back = authorize_at_provider(b, &s).await;
    callback(app, b, &back, Some(&s.binding)).await
}

/// The session a successful callback opened, and its state as `GET /auth/me` tells it.
async fn session_from(app: &TestApp, r: Response) -> (Session, Value) {
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
    assert_eq!(r.headers()["location"], "/app/");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&r);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("etx_session="))
        .expect("the session cookie");
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(session.split("; ").any(|a| a == attr), "{attr} in {session}");
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("etx_oidc_binding=;") && c.contains("Max-Age=0")),
        "the binding cookie is removed: {cookies:?}"
    );
    let token = cookie_value(&cookies, "etx_session").unwrap();
    let s = Session {
        cookie: format!("etx_session={token}"),
        csrf: String::new(),
    };
    let me = call(app, Method::GET, "/api/v1/auth/me", &s, None, false).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    let s = Session {
        csrf: me["csrf_token"].as_str().unwrap().to_owned(),
        ..s
    };
    (s, me)
}

/// A refusal: the problem's code, status and detail; no session cookie, the binding cookie
/// removed.
async fn refused(r: Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "expected {code}");
    let cookies = set_cookies(&r);
    assert!(
        !cookies.iter().any(|c| c.starts_with("etx_session=")),
        "no session on a refusal: {cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("etx_oidc_binding=;")),
        "the binding cookie is removed on a refusal too: {cookies:?}"
    );
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    p
}

async fn problem(r: Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "expected {code}");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    p
}

async fn sessions(app: &TestApp) -> i64 {
    app.count("sessions").await
}

async fn attempts(app: &TestApp, username: &str) -> Vec<String> {
    let db = app.db_conn().await;
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            if app.cfg.is_sqlite() {
                "SELECT outcome FROM login_attempts WHERE username = ? ORDER BY at"
            } else {
                "SELECT outcome FROM login_attempts WHERE username = $1 ORDER BY at"
            },
            [username.into()],
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "outcome").unwrap())
        .collect()
}

both_backends!(
    a_person_signs_in_through_the_provider_and_still_gives_the_second_factor,
    with = oidc_app,
    |app: TestApp, idp: Provider| async move {
        let (_, _, _, totp, recovery) = enrolled(&app, "SO-KHCN-HCM", "an.admin", "system_admin").await;
        let before = attempts(&app, "an.admin").await.len();
        let b = browser(&app);

        // The authorization request: code flow, PKCE S256, state and nonce, our client.
        let s = start(&app, &b).await;
        let q: HashMap<String, String> = s.authorize_url.query_pairs().into_owned().collect();
        assert!(
            s.authorize_url
                .as_str()
                .starts_with(&format!("{}/authorize?", idp.issuer()))
        );
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["redirect_uri"], REDIRECT_URI);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], "openid profile email");
        assert_eq!(q["state"].len(), 43);
        assert_eq!(q["nonce"].len(), 43);
        assert_ne!(q["state"], q["nonce"]);
        let back = authorize_at_provider(&b, &s).await;
        let (s1, me) = session_from(&app, callback(&app, &b, &back, Some(&s.binding)).await).await;
        assert_eq!(me["state"], "second_factor_required");
        assert_eq!(me["user"]["username"], "an.admin");
        assert_eq!(idp.with(|s| s.token_calls), 1);
        assert_eq!(
            attempts(&app, "an.admin").await.len(),
            before,
            "nothing is recorded until the second factor is given"
        );

        // Nothing but the second factor, me and logout.
        for (m, p) in [
            (Method::GET, "/api/v1/users"),
            (
                Method::GET,
                "/api/v1/records/0190f2a4-0000-7000-8000-000000000000",
            ),
            (Method::GET, "/api/v1/keys"),
            (Method::POST, "/api/v1/auth/mfa/enroll"),
            (Method::POST, "/api/v1/auth/password"),
        ] {
            let detail = problem(
                call(&app, m.clone(), p, &s1, None, true).await,
                401,
                "mfa_required",
            )
            .await;
            assert!(
                detail["detail"]
                    .as_str()
                    .unwrap()
                    .contains("/api/v1/auth/mfa/verify"),
                "{m} {p}"
            );
        }
        let verify = |s: &Session, body: Value| {
            let s = s.clone();
            let app = &app;
            async move { call(app, Method::POST, "/api/v1/auth/mfa/verify", &s, Some(body), true).await }
        };
        // Anti-forgery header required; malformed bodies refused.
        let r = call(
            &app,
            Method::POST,
            "/api/v1/auth/mfa/verify",
            &s1,
            Some(json!({"totp": "123456"})),
            false,
        )
        .await;
        problem(r, 403, "csrf_rejected").await;
        problem(verify(&s1, json!({})).await, 422, "validation_failed").await;
        problem(
            verify(&s1, json!({"totp": "1", "recovery_code": "x"})).await,
            422,
            "validation_failed",
        )
        .await;
        // A wrong code counts as a failed sign-in.
        problem(
            verify(&s1, json!({"totp": "12345"})).await,
            401,
            "invalid_mfa_code",
        )
        .await;
        assert_eq!(attempts(&app, "an.admin").await.last().unwrap(), "bad_mfa");
        // The next step's code (the enrolment used the current one).
        let code = totp.generate(now() + 30).to_string();
        let r = verify(&s1, json!({ "totp": code })).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["state"], "full");
        assert_eq!(attempts(&app, "an.admin").await.last().unwrap(), "ok");
        assert_eq!(
            call(&app, Method::GET, "/api/v1/users", &s1, None, false)
                .await
                .status(),
            200
        );
        let me: Value = call(&app, Method::GET, "/api/v1/auth/me", &s1, None, false)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["state"], "full");
        let p = problem(verify(&s1, json!({ "totp": code })).await, 409, "already_exists").await;
        assert!(p["detail"].as_str().unwrap().contains("not waiting"));

        // Another sign-in: the same code is a replay; a recovery code works once.
        let (s2, me) = session_from(&app, sign_in(&app, &b).await).await;
        assert_eq!(me["state"], "second_factor_required");
        problem(
            verify(&s2, json!({ "totp": code })).await,
            401,
            "invalid_mfa_code",
        )
        .await;
        let r = verify(&s2, json!({ "recovery_code": recovery[0] })).await;
        assert_eq!(r.status(), 200);
        let (s3, _) = session_from(&app, sign_in(&app, &b).await).await;
        problem(
            verify(&s3, json!({ "recovery_code": recovery[0] })).await,
            401,
            "invalid_mfa_code",
        )
        .await;

        // Wrong codes lock the account like failed password sign-ins; so is the next callback.
        for _ in 0..4 {
            problem(
                verify(&s3, json!({"totp": "12345"})).await,
                401,
                "invalid_mfa_code",
            )
            .await;
        }
        let r = verify(&s3, json!({"totp": "12345"})).await;
        assert_eq!(r.status(), 423);
        assert!(r.headers().contains_key("retry-after"));
        let n = sessions(&app).await;
        let p = refused(sign_in(&app, &b).await, 423, "account_locked").await;
        assert!(p["status"] == 423);
        assert_eq!(sessions(&app).await, n, "no session while locked");
    }
);

both_backends!(
    trusting_the_providers_mfa_opens_a_full_session,
    with = trusting_app,
    |app: TestApp, idp: Provider| async move {
        enrolled(&app, "SO-KHCN-HCM", "an.admin", "system_admin").await;
        let b = browser(&app);
        idp.user("an.admin", &["pwd", "mfa"]);
        let (s, me) = session_from(&app, sign_in(&app, &b).await).await;
        assert_eq!(me["state"], "full");
        assert_eq!(
            call(&app, Method::GET, "/api/v1/users", &s, None, false)
                .await
                .status(),
            200
        );
        assert_eq!(attempts(&app, "an.admin").await.last().unwrap(), "ok");
        // The provider's password alone is not enough, trusted or not.
        idp.user("an.admin", &["pwd"]);
        let (_, me) = session_from(&app, sign_in(&app, &b).await).await;
        assert_eq!(me["state"], "second_factor_required");
        // An account without a second factor must still enrol one, and a temporary password
        // must still be changed first.
        add_user(&app, "SO-KHCN-HCM", "new.operator", "operator").await;
        idp.user("new.operator", &["pwd", "otp"]);
        let (_, me) = session_from(&app, sign_in(&app, &b).await).await;
        assert_eq!(me["state"], "password_change_required");
    }
);

both_backends!(
    a_state_works_once_and_only_in_the_browser_that_started_it,
    with = oidc_app,
    |app: TestApp, idp: Provider| async move {
        enrolled(&app, "SO-KHCN-HCM", "an.admin", "system_admin").await;
        let b = browser(&app);
        let n = sessions(&app).await;

        // Replaying a used state (and code) fails.
        let s = start(&app, &b).await;
        let back = authorize_at_provider(&b, &s).await;
        session_from(&app, callback(&app, &b, &back, Some(&s.binding)).await).await;
        let n = n + 1;
        let replay = refused(
            callback(&app, &b, &back, Some(&s.binding)).await,
            401,
            "oidc_failed",
        )
        .await;
        assert!(
            replay["detail"].as_str().unwrap().contains("another browser"),
            "{replay}"
        );
        assert_eq!(replay["status"], 401);

        // Without the binding cookie: refused, and the state is spent.
        let s = start(&app, &b).await;
        let back = authorize_at_provider(&b, &s).await;
        refused(callback(&app, &b, &back, None).await, 401, "oidc_failed").await;
        refused(
            callback(&app, &b, &back, Some(&s.binding)).await,
            401,
            "oidc_failed",
        )
        .await;

        // Login CSRF: an attacker's code and state planted into a victim's browser, which holds
        // the cookie of a sign-in of its own.
        let victim = start(&app, &b).await;
        let attacker = start(&app, &b).await;
        let attackers_back = authorize_at_provider(&b, &attacker).await;
        refused(
            callback(&app, &b, &attackers_back, Some(&victim.binding)).await,
            401,
            "oidc_failed",
        )
        .await;

        // A forged or missing state, an error from the provider, another issuer named.
        let s = start(&app, &b).await;
        let mut back = authorize_at_provider(&b, &s).await;
        back.state = "x".repeat(43);
        refused(
            callback(&app, &b, &back, Some(&s.binding)).await,
            401,
            "oidc_failed",
        )
        .await;
        let r = b
            .get(app.url("/api/v1/auth/oidc/callback?code=abc"))
            .header("cookie", format!("etx_oidc_binding={}", s.binding))
            .send()
            .await
            .unwrap();
        refused(r, 401, "oidc_failed").await;
        let s = start(&app, &b).await;
        let back = authorize_at_provider(&b, &s).await;
        let r = b
            .get(app.url("/api/v1/auth/oidc/callback"))
            .query(&[("error", "access_denied"), ("state", back.state.as_str())])
            .header("cookie", format!("etx_oidc_binding={}", s.binding))
            .send()
            .await
            .unwrap();
        let p = refused(r, 401, "oidc_failed").await;
        assert!(p["detail"].as_str().unwrap().contains("did not authorise"), "{p}");
        let s = start(&app, &b).await;
        let mut back = authorize_at_provider(&b, &s).await;
        back.iss = "https://idp.evil.example".into();
        refused(
            callback(&app, &b, &back, Some(&s.binding)).await,
            401,
            "oidc_failed",
        )
        .await;
        // In English on request, like every problem.
        let s = start(&app, &b).await;
        let back = authorize_at_provider(&b, &s).await;
        let r = b
            .get(app.url("/api/v1/auth/oidc/callback"))
            .query(&[("code", back.code.as_str()), ("state", "unknown")])
            .header("accept-language", "en")
            .send()
            .await
            .unwrap();
        let p = refused(r, 401, "oidc_failed").await;
        assert_eq!(
            p["title"],
            "Signing in through the identity provider failed; please sign in again"
        );

        assert_eq!(sessions(&app).await, n, "no refusal opened a session");
        assert_eq!(
            idp.with(|s| s.token_calls),
            1,
            "no refused state reached the token endpoint"
        );
        // Only GET is public on the sign-in paths.
        let r = b.post(app.url("/api/v1/auth/oidc/login")).send().await.unwrap();
        problem(r, 401, "missing_credentials").await;
    }
);

both_backends!(
    each_id_token_defect_is_refused_and_opens_no_session,
    with = oidc_app,
    |app: TestApp, idp: Provider| async move {
        enrolled(&app, "SO-KHCN-HCM", "an.admin", "system_admin").await;
        let b = browser(&app);
        let n = sessions(&app).await;
        for (defect, detail) in [
            (Defect::WrongAudience, "ID token"),
            (Defect::WrongIssuer, "ID token"),
            (Defect::Expired, "ID token"),
            (Defect::WrongNonce, "ID token"),
            (Defect::BadSignature, "ID token"),
            (Defect::AlgNone, "ID token"),
            (Defect::Hs256, "ID token"),
            (Defect::WrongVerifier, "refused the authorization code"),
        ] {
            idp.defect(defect);
            let p = refused(sign_in(&app, &b).await, 401, "oidc_failed").await;
            assert!(p["detail"].as_str().unwrap().contains(detail), "{defect:?}: {p}");
        }
        idp.defect(Defect::NoIdToken);
        refused(sign_in(&app, &b).await, 502, "bad_gateway").await;
        assert_eq!(sessions(&app).await, n, "no defect opened a session");

        // A good token still works, signed with RS256 too.
        idp.defect(Defect::None);
        idp.with(|s| s.rs256 = true);
        let (_, me) = session_from(&app, sign_in(&app, &b).await).await;
        assert_eq!(me["state"], "second_factor_required");
        idp.with(|s| s.rs256 = false);

        // A key rotation: a token signed with a key the hub has not fetched yet makes it fetch
        // the key set again, once.
        let fetches = idp.with(|s| s.jwks_fetches);
        idp.with(|s| s.rotated = true);
        session_from(&app, sign_in(&app, &b).await).await;
        assert_eq!(idp.with(|s| s.jwks_fetches), fetches + 1);
        // A key nobody publishes: refused, without hammering the provider for its keys (at
        // most one forced fetch every 10 s).
        let rotated_at = std::time::Instant::now();
        idp.defect(Defect::UnknownKid);
        let p = refused(sign_in(&app, &b).await, 401, "oidc_failed").await;
        assert!(p["detail"].as_str().unwrap().contains("ID token"));
        refused(sign_in(&app, &b).await, 401, "oidc_failed").await;
        if rotated_at.elapsed() < std::time::Duration::from_secs(9) {
            assert_eq!(
                idp.with(|s| s.jwks_fetches),
                fetches + 1,
                "forced fetches are rate-limited"
            );
        }
        assert_eq!(sessions(&app).await, n + 2);
    }
);

both_backends!(
    unknown_and_disabled_accounts_are_refused_alike,
    with = oidc_app,
    |app: TestApp, idp: Provider| async move {
        add_user(&app, "SO-KHCN-HCM", "was.here", "analyst").await;
        let db = app.db_conn().await;
        db.execute_unprepared("UPDATE users SET status = 'disabled' WHERE username = 'was.here'")
            .await
            .unwrap();
        let b = browser(&app);
        let n = sessions(&app).await;
        idp.user("nobody.here", &["pwd"]);
        let unknown = refused(sign_in(&app, &b).await, 401, "oidc_failed").await;
        idp.user("Was.Here", &["pwd"]);
        let disabled = refused(sign_in(&app, &b).await, 401, "oidc_failed").await;
        for field in ["code", "title", "detail", "status", "type"] {
            assert_eq!(unknown[field], disabled[field], "{field}");
        }
        assert!(unknown["detail"].as_str().unwrap().contains("no active account"));
        assert_eq!(sessions(&app).await, n);
        // Both are sign-in attempts the early warning and the lockout see.
        assert_eq!(attempts(&app, "nobody.here").await, ["unknown_user"]);
        assert_eq!(attempts(&app, "was.here").await, ["disabled"]);
        // A claim that is not a username at all is refused the same way.
        idp.user("not a username!", &["pwd"]);
        let odd = refused(sign_in(&app, &b).await, 401, "oidc_failed").await;
        assert_eq!(odd["detail"], unknown["detail"]);
    }
);

both_backends!(
    without_configuration_the_sign_in_endpoints_are_not_found,
    |app: TestApp| async move {
        let b = browser(&app);
        for path in [
            "/api/v1/auth/oidc/login",
            "/api/v1/auth/oidc/callback?code=a&state=b",
        ] {
            let r = b.get(app.url(path)).send().await.unwrap();
            let p = problem(r, 404, "not_found").await;
            assert!(p["detail"].as_str().unwrap().contains("not configured"), "{p}");
        }
        let r = b
            .post(app.url("/api/v1/auth/mfa/verify"))
            .json(&json!({"totp": "123456"}))
            .send()
            .await
            .unwrap();
        problem(r, 401, "missing_credentials").await;
    }
);
