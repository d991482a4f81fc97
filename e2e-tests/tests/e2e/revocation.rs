//! A revoked API key is refused within one second by every gateway instance (R-SEC-1, issue 4
//! §5 and acceptance): two gateway processes in front of one identity, each caching successful
//! authentications for a full minute — so only the revocation broadcast through Redis can make
//! the second gateway refuse the key in time.

use etx_e2e::{Hub, HubOptions, Mode};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_one_gateway_is_refused_by_another_within_a_second() {
    let opts = HubOptions {
        env: vec![("ETX__SECURITY__AUTH_CACHE_MS".into(), "60000".into())],
        ..Default::default()
    };
    let mut hub = Hub::start(Mode::Distributed, opts).await;
    let (base2, client2) = hub.add_gateway(&[]).await;
    let source = hub
        .onboard("SO-KHCN-DN", "Sở Khoa học và Công nghệ Đà Nẵng")
        .await;
    let other = hub
        .onboard("SO-KHCN-CT", "Sở Khoa học và Công nghệ Cần Thơ")
        .await;
    let systems = |client: &reqwest::Client, base: &str, key: &str| {
        client
            .get(format!("{base}/api/v1/systems"))
            .header("x-api-key", key)
            .send()
    };
    // Both gateways now hold the key in their caches.
    assert_eq!(
        systems(&hub.client, &hub.base, &source.api_key)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        systems(&client2, &base2, &source.api_key).await.unwrap().status(),
        200
    );

    let revoked = hub
        .client
        .delete(hub.url(&format!("/api/v1/keys/{}", source.key_id)))
        .header("x-api-key", &source.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let at = Instant::now();
    let mut refused_after = None;
    while at.elapsed() < Duration::from_secs(5) {
        let r = systems(&client2, &base2, &source.api_key).await.unwrap();
        if r.status() == 401 {
            let p: serde_json::Value = r.json().await.unwrap();
            assert_eq!(p["code"], "revoked_credentials", "{p}");
            refused_after = Some(at.elapsed());
            break;
        }
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = refused_after.expect("the second gateway never refused the revoked key");
    assert!(
        after < Duration::from_secs(1),
        "refused only after {after:?} (requirement: within 1 s)"
    );
    // The first gateway refuses at once, and other keys keep working on both.
    assert_eq!(
        systems(&hub.client, &hub.base, &source.api_key)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        systems(&client2, &base2, &other.api_key).await.unwrap().status(),
        200
    );
    assert_eq!(
        systems(&hub.client, &hub.base, &other.api_key)
            .await
            .unwrap()
            .status(),
        200
    );
}
