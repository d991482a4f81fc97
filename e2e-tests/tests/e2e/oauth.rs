//! OAuth2 access tokens in the distributed mode (R-SEC-1, issue 4 §4): a connected system gets a
//! token through one gateway (HTTP Basic client authentication reaching identity in its own
//! process, RFC 6749 errors passed through as they are), uses it through another, and a token
//! revoked (RFC 7009) or a client deleted through one gateway is refused by the other within a
//! second — although each gateway caches successful authentications for a full minute.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use etx_e2e::{Hub, HubOptions, Mode};
use serde_json::Value;
use std::time::{Duration, Instant};

const FORM: &str = "application/x-www-form-urlencoded";

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Polls `GET /api/v1/organisations/me` with the token through `base` until it is refused;
/// returns how long that took, asserting the refusal's code.
async fn refused_within(client: &reqwest::Client, base: &str, token: &str, code: &str) -> Duration {
    let at = Instant::now();
    while at.elapsed() < Duration::from_secs(5) {
        let r = client
            .get(format!("{base}/api/v1/organisations/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if r.status() == 401 {
            let p: Value = r.json().await.unwrap();
            assert_eq!(p["code"], code, "{p}");
            return at.elapsed();
        }
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the other gateway never refused the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_one_gateway_is_refused_by_another_within_a_second() {
    let opts = HubOptions {
        env: vec![("ETX__SECURITY__AUTH_CACHE_MS".into(), "60000".into())],
        ..Default::default()
    };
    let mut hub = Hub::start(Mode::Distributed, opts).await;
    let (base2, client2) = hub.add_gateway(&[]).await;
    let source = hub
        .onboard("SO-KHCN-BD", "Sở Khoa học và Công nghệ Bình Dương")
        .await;

    // An OAuth client, registered through the first gateway.
    let reg: Value = hub
        .client
        .post(hub.url("/api/v1/oauth/clients"))
        .header("x-api-key", &source.api_key)
        .json(&serde_json::json!({ "scopes": ["records:write", "records:read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = reg["client_id"].as_str().expect("client registered").to_owned();
    let secret = reg["client_secret"].as_str().unwrap().to_owned();

    // Tokens: by HTTP Basic through the first gateway, in the body through the second.
    let token = |client: reqwest::Client, url: String, auth: Option<String>, body: String| async move {
        let mut r = client.post(url).header("content-type", FORM).body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send().await.unwrap()
    };
    let resp = token(
        hub.client.clone(),
        hub.url("/api/v1/oauth/token"),
        Some(basic(&id, &secret)),
        "grant_type=client_credentials".into(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let t: Value = resp.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "records:write records:read");
    let t1 = t["access_token"].as_str().unwrap().to_owned();
    let resp = token(
        client2.clone(),
        format!("{base2}/api/v1/oauth/token"),
        None,
        format!("grant_type=client_credentials&scope=records%3Aread&client_id={id}&client_secret={secret}"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let t2: Value = resp.json().await.unwrap();
    let t2 = t2["access_token"].as_str().unwrap().to_owned();

    // A refusal reaches the client as RFC 6749 JSON, through the gateway unchanged. The wrong
    // secret differs in its last character (which is random: replacing it by a fixed `A` was
    // the right secret once in 64 runs).
    let (head, last) = secret.split_at(secret.len() - 1);
    let wrong_secret = format!("{head}{}", if last == "A" { "B" } else { "A" });
    let wrong = token(
        hub.client.clone(),
        hub.url("/api/v1/oauth/token"),
        Some(basic(&id, &wrong_secret)),
        "grant_type=client_credentials".into(),
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["www-authenticate"], "Basic realm=\"etxhub\"");
    let e: Value = wrong.json().await.unwrap();
    assert_eq!(e["error"], "invalid_client", "{e}");

    // The first token submits through the second gateway and reads back through the first;
    // both gateways now hold both tokens in their caches.
    let receipt: Value = client2
        .post(format!("{base2}/api/v1/records"))
        .bearer_auth(&t1)
        .header("content-type", "application/json")
        .body(std::fs::read(etx_e2e::example_path("statistics/01-e-invoice-count-hcmc.json")).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record = receipt["record_ids"][0].as_str().expect("accepted").to_owned();
    let read = hub
        .client
        .get(hub.url(&format!("/api/v1/records/{record}")))
        .bearer_auth(&t1)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    for (client, base) in [(&hub.client, hub.base.as_str()), (&client2, base2.as_str())] {
        for t in [&t1, &t2] {
            let r = client
                .get(format!("{base}/api/v1/organisations/me"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }

    // RFC 7009 revocation through the first gateway: the second refuses within a second.
    let revoked = token(
        hub.client.clone(),
        hub.url("/api/v1/oauth/revoke"),
        Some(basic(&id, &secret)),
        format!("token={t1}"),
    )
    .await;
    assert_eq!(revoked.status(), 200);
    let after = refused_within(&client2, &base2, &t1, "revoked_credentials").await;
    assert!(
        after < Duration::from_secs(1),
        "refused only after {after:?} (requirement: within 1 s)"
    );
    assert!(
        refused_within(&hub.client, &hub.base, &t1, "revoked_credentials").await < Duration::from_millis(100)
    );
    // The other token still works on both.
    for (client, base) in [(&hub.client, hub.base.as_str()), (&client2, base2.as_str())] {
        let r = client
            .get(format!("{base}/api/v1/organisations/me"))
            .bearer_auth(&t2)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    // Deleting the client through the second gateway: the first refuses its last token within
    // a second.
    let deleted = client2
        .delete(format!("{base2}/api/v1/oauth/clients/{id}"))
        .header("x-api-key", &source.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let after = refused_within(&hub.client, &hub.base, &t2, "revoked_credentials").await;
    assert!(
        after < Duration::from_secs(1),
        "refused only after {after:?} (requirement: within 1 s)"
    );
}
