//! Identity's use cases against an in-memory fake of the store port (R-SRC-1, R-SEC-1; key
//! options and rotation, onboarding within a subtree and change declarations: issue 4 §5, §9,
//! R-ADM, Art. 10.4).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use etx_crypto::ApiKeyHasher;
use etx_domain::authz::{Actor, Denial, Scope};
use etx_domain::{ApiKeyId, IpNetwork, OrgCode, OrgId, OrgKind, OrgName, Organisation, SystemId, SystemName};
use etx_identity_core::{
    ApiKeyInfo, AuthError, ChangeKind, ConfigChange, ConnectionFacts, Endpoints, IdentityError,
    IdentityService, IdentityStore, KeyMaterial, KeyOptions, NewConfigChange, NewSource, RateFacts,
    StoreError, SystemInfo,
};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Fake {
    orgs: Mutex<Vec<Organisation>>,
    systems: Mutex<Vec<SystemInfo>>,
    keys: Mutex<Vec<KeyMaterial>>,
    changes: Mutex<Vec<ConfigChange>>,
}

#[async_trait::async_trait]
impl IdentityStore for Fake {
    async fn org_by_code(&self, code: &OrgCode) -> Result<Option<Organisation>, StoreError> {
        Ok(self
            .orgs
            .lock()
            .unwrap()
            .iter()
            .find(|o| &o.code == code)
            .cloned())
    }
    async fn org_by_id(&self, id: OrgId) -> Result<Option<Organisation>, StoreError> {
        Ok(self.orgs.lock().unwrap().iter().find(|o| o.id == id).cloned())
    }
    async fn create_source(
        &self,
        org: &Organisation,
        new: bool,
        s: &SystemInfo,
        k: &KeyMaterial,
    ) -> Result<(), StoreError> {
        if new {
            let mut orgs = self.orgs.lock().unwrap();
            if orgs.iter().any(|o| o.code == org.code) {
                return Err(StoreError::Conflict);
            }
            orgs.push(org.clone());
        }
        self.systems.lock().unwrap().push(s.clone());
        self.keys.lock().unwrap().push(k.clone());
        Ok(())
    }
    async fn insert_key(&self, k: &KeyMaterial) -> Result<(), StoreError> {
        self.keys.lock().unwrap().push(k.clone());
        Ok(())
    }
    async fn key_by_prefix(&self, prefix: &str) -> Result<Option<KeyMaterial>, StoreError> {
        Ok(self
            .keys
            .lock()
            .unwrap()
            .iter()
            .find(|k| k.info.prefix == prefix)
            .cloned())
    }
    async fn keys_of_org(&self, org: OrgId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        Ok(self
            .keys
            .lock()
            .unwrap()
            .iter()
            .filter(|k| k.info.org_id == org)
            .map(|k| k.info.clone())
            .collect())
    }
    async fn revoke_key(&self, org: OrgId, key: ApiKeyId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().unwrap();
        match keys.iter_mut().find(|k| k.info.id == key && k.info.org_id == org) {
            Some(k) => {
                k.info.revoked_at.get_or_insert(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    async fn systems_of_org(&self, org: OrgId) -> Result<Vec<SystemInfo>, StoreError> {
        Ok(self
            .systems
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.org_id == org)
            .cloned()
            .collect())
    }
    async fn system(&self, org: OrgId, id: SystemId) -> Result<Option<SystemInfo>, StoreError> {
        Ok(self
            .systems
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.id == id && s.org_id == org)
            .cloned())
    }
    async fn create_system(&self, s: &SystemInfo, k: &KeyMaterial) -> Result<(), StoreError> {
        self.systems.lock().unwrap().push(s.clone());
        self.keys.lock().unwrap().push(k.clone());
        Ok(())
    }
    async fn key(&self, org: OrgId, id: ApiKeyId) -> Result<Option<ApiKeyInfo>, StoreError> {
        Ok(self
            .keys
            .lock()
            .unwrap()
            .iter()
            .find(|k| k.info.id == id && k.info.org_id == org)
            .map(|k| k.info.clone()))
    }
    async fn rotate_key(
        &self,
        org: OrgId,
        old: ApiKeyId,
        until: DateTime<Utc>,
        successor: &KeyMaterial,
    ) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().unwrap();
        let Some(k) = keys.iter_mut().find(|k| {
            k.info.id == old
                && k.info.org_id == org
                && k.info.revoked_at.is_none()
                && k.info.replaced_by.is_none()
        }) else {
            return Ok(false);
        };
        k.info.policy.expires_at = Some(until);
        k.info.replaced_by = Some(successor.info.id);
        keys.push(successor.clone());
        Ok(true)
    }
    async fn insert_config_change(&self, change: &ConfigChange) -> Result<(), StoreError> {
        self.changes.lock().unwrap().push(change.clone());
        Ok(())
    }
    async fn config_changes(
        &self,
        org: OrgId,
        system: SystemId,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<ConfigChange>, StoreError> {
        let mut v: Vec<_> = self
            .changes
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.org_id == org && c.system_id == system && before.is_none_or(|b| c.declared_at < b))
            .cloned()
            .collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.declared_at));
        v.truncate(limit as usize);
        Ok(v)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn service() -> IdentityService<Fake> {
    IdentityService::new(Fake::default(), Arc::new(ApiKeyHasher::new(&[7u8; 32])))
}

fn source(code: &str, kind: OrgKind, parent: Option<&str>) -> NewSource {
    NewSource {
        org_code: OrgCode::parse(code).unwrap(),
        org_name: OrgName::parse("Sở Thông tin").unwrap(),
        org_kind: kind,
        parent: parent.map(|p| OrgCode::parse(p).unwrap()),
        valid_from: None,
        system_name: SystemName::parse("Cổng dữ liệu").unwrap(),
    }
}

#[tokio::test]
async fn onboarding_issues_a_key_that_authenticates_as_the_new_system() {
    let svc = service();
    let out = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    assert!(out.org_created);
    let caller = svc.authenticate_api_key(&out.api_key, None).await.unwrap();
    assert_eq!(
        (caller.org_id, caller.system_id, caller.key_id),
        (out.org_id, Some(out.system_id), Some(out.key_id))
    );
    assert_eq!(caller.user_id, None);
    assert_eq!(caller.subject(), format!("system:{}", out.system_id));
    let stored = svc.store().keys.lock().unwrap()[0].hash.clone();
    assert!(
        !String::from_utf8_lossy(&stored).contains(&out.api_key),
        "only a hash is stored"
    );
}

#[tokio::test]
async fn a_second_system_joins_the_existing_organisation() {
    let svc = service();
    let a = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    let b = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    assert_eq!(a.org_id, b.org_id);
    assert!(!b.org_created);
    assert_ne!(a.system_id, b.system_id);
    let mismatch = svc.onboard(source("79", OrgKind::Ministry, None)).await;
    assert!(matches!(mismatch, Err(IdentityError::OrgMismatch(_))));
}

#[tokio::test]
async fn the_hierarchy_is_checked_on_onboarding() {
    let svc = service();
    assert!(matches!(
        svc.onboard(source("HCM-SKHCN", OrgKind::ProvincialDepartment, Some("79")))
            .await,
        Err(IdentityError::UnknownParent(_))
    ));
    svc.onboard(source("BO-KHCN", OrgKind::Ministry, None))
        .await
        .unwrap();
    assert!(matches!(
        svc.onboard(source(
            "HCM-SKHCN",
            OrgKind::ProvincialDepartment,
            Some("BO-KHCN")
        ))
        .await,
        Err(IdentityError::Hierarchy(_))
    ));
    svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    assert!(
        svc.onboard(source("HCM-SKHCN", OrgKind::ProvincialDepartment, Some("79")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_only_its_owner_can_revoke_it() {
    let svc = service();
    let a = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    let b = svc.onboard(source("01", OrgKind::Province, None)).await.unwrap();
    assert!(matches!(
        svc.revoke_key(b.org_id, a.key_id).await,
        Err(IdentityError::NotFound)
    ));
    assert!(svc.authenticate_api_key(&a.api_key, None).await.is_ok());
    svc.revoke_key(a.org_id, a.key_id).await.unwrap();
    assert_eq!(
        svc.authenticate_api_key(&a.api_key, None).await,
        Err(AuthError::Revoked)
    );
    assert!(svc.authenticate_api_key(&b.api_key, None).await.is_ok());
}

#[tokio::test]
async fn malformed_and_unknown_keys_are_invalid_and_empty_is_missing() {
    let svc = service();
    let a = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    assert_eq!(svc.authenticate_api_key("", None).await, Err(AuthError::Missing));
    for bad in [
        "etx_",
        "nope",
        "etx_aaaaaaaaaaaa_bbbb",
        &"x".repeat(10_000),
        "etx_ạạạạ_ơ",
    ] {
        assert_eq!(
            svc.authenticate_api_key(bad, None).await,
            Err(AuthError::Invalid),
            "{bad}"
        );
    }
    let other = service()
        .onboard(source("79", OrgKind::Province, None))
        .await
        .unwrap();
    assert_eq!(
        svc.authenticate_api_key(&other.api_key, None).await,
        Err(AuthError::Invalid)
    );
    let (_, rotated) = svc
        .issue_key(a.org_id, a.system_id, KeyOptions::default(), admin())
        .await
        .unwrap();
    assert!(svc.authenticate_api_key(&rotated, None).await.is_ok());
    assert!(
        svc.authenticate_api_key(&a.api_key, None).await.is_ok(),
        "rotation overlaps: the old key still works"
    );
}

const ADMIN: &[String] = &[];

fn admin() -> Actor<'static> {
    Actor::Person { roles: ADMIN }
}

fn net(s: &str) -> IpNetwork {
    IpNetwork::parse(s).unwrap()
}

#[tokio::test]
async fn a_key_carries_its_scopes_expiry_and_networks_and_is_refused_outside_them() {
    let svc = service();
    let a = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    let (info, key) = svc
        .issue_key(
            a.org_id,
            a.system_id,
            KeyOptions {
                scopes: Some(vec![Scope::RecordsWrite]),
                ttl_days: Some(1),
                allowed_networks: vec![net("203.0.113.0/24"), net("2001:db8::/32")],
                ..Default::default()
            },
            admin(),
        )
        .await
        .unwrap();
    assert_eq!(info.policy.scopes, vec![Scope::RecordsWrite]);
    assert!(info.policy.expires_at.unwrap() > Utc::now() + TimeDelta::hours(23));
    let caller = svc.authenticate_api_key(&key, Some("203.0.113.7")).await.unwrap();
    assert_eq!(caller.scopes, vec!["records:write".to_owned()]);
    assert_eq!(caller.expires_at, info.policy.expires_at);
    assert_eq!(caller.allowed_networks.len(), 2);
    assert!(svc.authenticate_api_key(&key, Some("2001:db8::1")).await.is_ok());
    assert_eq!(
        svc.authenticate_api_key(&key, Some("198.51.100.1")).await,
        Err(AuthError::AddressNotAllowed)
    );
    assert_eq!(
        svc.authenticate_api_key(&key, None).await,
        Err(AuthError::AddressNotAllowed)
    );
    // The cached caller is refused at its expiry without asking the store.
    assert_eq!(
        caller.admits(info.policy.expires_at.unwrap(), Some("203.0.113.7")),
        Err(AuthError::CredentialExpired)
    );
    // An expired key is refused by identity too.
    svc.store()
        .keys
        .lock()
        .unwrap()
        .last_mut()
        .unwrap()
        .info
        .policy
        .expires_at = Some(Utc::now() - TimeDelta::seconds(1));
    assert_eq!(
        svc.authenticate_api_key(&key, Some("203.0.113.7")).await,
        Err(AuthError::CredentialExpired)
    );
}

#[tokio::test]
async fn a_system_cannot_grant_a_scope_its_own_key_lacks() {
    let svc = service();
    let a = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    let held = vec!["records:write".to_owned(), "keys:manage".to_owned()];
    let system = Actor::System { scopes: &held };
    let escalate = svc
        .issue_key(
            a.org_id,
            a.system_id,
            KeyOptions {
                scopes: Some(vec![Scope::RecordsWrite, Scope::RecordsRead]),
                ..Default::default()
            },
            system,
        )
        .await;
    assert!(matches!(
        escalate,
        Err(IdentityError::Denied(Denial::MissingScope(Scope::RecordsRead)))
    ));
    let (info, _) = svc
        .issue_key(a.org_id, a.system_id, KeyOptions::default(), system)
        .await
        .unwrap();
    assert_eq!(
        info.policy.scopes,
        vec![Scope::RecordsWrite, Scope::KeysManage],
        "without asked scopes a system gets exactly its own"
    );
    // Nor rotate a stronger key into a new one.
    assert!(matches!(
        svc.rotate_key(a.org_id, a.key_id, TimeDelta::hours(1), system)
            .await,
        Err(IdentityError::Denied(Denial::MissingScope(_)))
    ));
}

#[tokio::test]
async fn broken_key_options_are_invalid_with_their_fields() {
    let svc = service();
    let a = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    let r = svc
        .issue_key(
            a.org_id,
            a.system_id,
            KeyOptions {
                expires_at: Some(Utc::now() - TimeDelta::days(1)),
                scopes: Some(vec![]),
                ..Default::default()
            },
            admin(),
        )
        .await;
    let Err(IdentityError::Invalid(v)) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        v.iter().map(|v| v.path.as_str()).collect::<Vec<_>>(),
        ["/scopes", "/expires_at"]
    );
}

#[tokio::test]
async fn rotation_overlaps_then_retires_the_old_key() {
    let svc = service();
    let a = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    let b = svc.onboard(source("01", OrgKind::Province, None)).await.unwrap();
    assert!(matches!(
        svc.rotate_key(b.org_id, a.key_id, TimeDelta::hours(1), admin())
            .await,
        Err(IdentityError::NotFound)
    ));
    let (new, new_key, old) = svc
        .rotate_key(a.org_id, a.key_id, TimeDelta::hours(1), admin())
        .await
        .unwrap();
    assert_eq!(new.rotated_from, Some(a.key_id));
    assert_eq!(old.replaced_by, Some(new.id));
    assert_eq!(new.system_id, a.system_id);
    assert_eq!(new.policy.scopes, Scope::DEFAULT.to_vec());
    assert_eq!(
        new.policy.expires_at, None,
        "a key without expiry gets a successor without"
    );
    let old_until = old.policy.expires_at.unwrap();
    assert!(old_until > Utc::now() + TimeDelta::minutes(59) && old_until <= Utc::now() + TimeDelta::hours(1));
    // Both work during the overlap …
    let old_caller = svc.authenticate_api_key(&a.api_key, None).await.unwrap();
    assert_eq!(old_caller.expires_at, Some(old_until));
    assert!(svc.authenticate_api_key(&new_key, None).await.is_ok());
    // … and after it only the successor.
    assert_eq!(
        old_caller.admits(old_until, None),
        Err(AuthError::CredentialExpired)
    );
    // A key is rotated once.
    assert!(matches!(
        svc.rotate_key(a.org_id, a.key_id, TimeDelta::hours(1), admin())
            .await,
        Err(IdentityError::NotRotatable(_))
    ));
    // A revoked key is not rotated.
    svc.revoke_key(a.org_id, new.id).await.unwrap();
    assert!(matches!(
        svc.rotate_key(a.org_id, new.id, TimeDelta::hours(1), admin())
            .await,
        Err(IdentityError::NotRotatable(_))
    ));
}

#[tokio::test]
async fn a_successor_keeps_its_predecessors_lifetime_and_networks() {
    let svc = service();
    let a = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    let (k, _) = svc
        .issue_key(
            a.org_id,
            a.system_id,
            KeyOptions {
                scopes: Some(vec![Scope::RecordsWrite]),
                ttl_days: Some(90),
                allowed_networks: vec![net("203.0.113.0/24")],
                ..Default::default()
            },
            admin(),
        )
        .await
        .unwrap();
    let (new, _, old) = svc
        .rotate_key(a.org_id, k.id, TimeDelta::days(40), admin())
        .await
        .unwrap();
    assert_eq!(new.policy.scopes, vec![Scope::RecordsWrite]);
    assert_eq!(new.policy.allowed_networks, vec![net("203.0.113.0/24")]);
    let lifetime = new.policy.expires_at.unwrap() - new.created_at;
    assert!(
        (lifetime - TimeDelta::days(90)).num_seconds().abs() < 5,
        "{lifetime}"
    );
    assert_eq!(
        old.policy.expires_at,
        k.policy.expires_at.map(|e| e.min(old.policy.expires_at.unwrap())),
        "an overlap never extends the old key's life"
    );
}

fn facts() -> ConnectionFacts {
    let mut f = ConnectionFacts {
        endpoints: Endpoints {
            base_url: "https://hub.example".into(),
            rest: "https://hub.example/api/v1".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    f.limits.per_organisation = RateFacts {
        rate: 500.0,
        burst: 1000,
    };
    f
}

#[tokio::test]
async fn onboarding_within_a_subtree_answers_the_bundle_and_nothing_outside() {
    let svc = service().with_connection_facts(facts());
    let province = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    svc.onboard(source("01", OrgKind::Province, None)).await.unwrap();
    let o = svc
        .onboard_source(
            source("HCM-SKHCN", OrgKind::ProvincialDepartment, Some("79")),
            KeyOptions {
                scopes: Some(vec![Scope::RecordsWrite]),
                ..Default::default()
            },
            Some(province.org_id),
        )
        .await
        .unwrap();
    assert!(o.org_created);
    assert_eq!(o.bundle.organisation.code, "HCM-SKHCN");
    assert_eq!(o.bundle.endpoints.rest, "https://hub.example/api/v1");
    assert_eq!(o.bundle.limits.per_organisation.burst, 1000);
    assert_eq!(o.bundle.keys.len(), 1);
    assert_eq!(o.bundle.keys[0].policy.scopes, vec![Scope::RecordsWrite]);
    let c = svc.authenticate_api_key(&o.api_key, None).await.unwrap();
    assert_eq!(c.org_id, o.bundle.organisation.id);
    // Under another province: not found, whether it exists or not.
    for parent in ["01", "99"] {
        assert!(matches!(
            svc.onboard_source(
                source("HN-SKHCN", OrgKind::ProvincialDepartment, Some(parent)),
                KeyOptions::default(),
                Some(province.org_id),
            )
            .await,
            Err(IdentityError::NotFound)
        ));
    }
    // An existing organisation outside the subtree neither.
    assert!(matches!(
        svc.onboard_source(
            source("01", OrgKind::Province, Some("79")),
            KeyOptions::default(),
            Some(province.org_id)
        )
        .await,
        Err(IdentityError::NotFound)
    ));
    // A new organisation through the API is always placed within the subtree.
    assert!(matches!(
        svc.onboard_source(
            source("BO-X", OrgKind::Ministry, None),
            KeyOptions::default(),
            Some(province.org_id)
        )
        .await,
        Err(IdentityError::Invalid(_))
    ));
    // The bundle without secrets, for the organisation's own systems only.
    let b = svc
        .connection(o.bundle.organisation.id, o.bundle.system.id)
        .await
        .unwrap();
    assert_eq!(b.keys.len(), 1);
    assert!(matches!(
        svc.connection(province.org_id, o.bundle.system.id).await,
        Err(IdentityError::NotFound)
    ));
}

#[tokio::test]
async fn changes_are_declared_by_the_system_itself_and_listed_newest_first() {
    let svc = service();
    let a = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    let a2 = svc.onboard(source("79", OrgKind::Province, None)).await.unwrap();
    let b = svc.onboard(source("01", OrgKind::Province, None)).await.unwrap();
    let change = |d: &str| NewConfigChange {
        kind: ChangeKind::SoftwareVersion,
        description: d.into(),
        effective_at: Utc::now(),
        details: serde_json::json!({"from": "2.3", "to": "2.4"})
            .as_object()
            .cloned(),
    };
    let by = format!("system:{}", a.system_id);
    let first = svc
        .declare_change(
            a.org_id,
            a.system_id,
            change("2.4"),
            by.clone(),
            Some(a.system_id),
        )
        .await
        .unwrap();
    assert_eq!(first.declared_by, by);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    svc.declare_change(a.org_id, a.system_id, change("2.5"), "user:x".into(), None)
        .await
        .unwrap();
    let listed = svc
        .config_changes(a.org_id, a.system_id, None, 10, None)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|c| c.description.as_str()).collect::<Vec<_>>(),
        ["2.5", "2.4"]
    );
    assert!(matches!(
        svc.declare_change(
            b.org_id,
            a.system_id,
            change("x"),
            "system:b".into(),
            Some(b.system_id)
        )
        .await,
        Err(IdentityError::NotFound)
    ));
    assert!(matches!(
        svc.declare_change(
            a.org_id,
            a.system_id,
            change("x"),
            "system:a2".into(),
            Some(a2.system_id)
        )
        .await,
        Err(IdentityError::Denied(Denial::Forbidden))
    ));
    assert!(matches!(
        svc.declare_change(a.org_id, a.system_id, change(" "), by, Some(a.system_id))
            .await,
        Err(IdentityError::Invalid(_))
    ));
}
