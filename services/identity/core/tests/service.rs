//! Identity's use cases against an in-memory fake of the store port (R-SRC-1, R-SEC-1).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use etx_crypto::ApiKeyHasher;
use etx_domain::{ApiKeyId, OrgCode, OrgId, OrgKind, OrgName, Organisation, SystemId, SystemName};
use etx_identity_core::{
    ApiKeyInfo, AuthError, IdentityError, IdentityService, IdentityStore, KeyMaterial, NewSource, StoreError,
    SystemInfo,
};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Fake {
    orgs: Mutex<Vec<Organisation>>,
    systems: Mutex<Vec<SystemInfo>>,
    keys: Mutex<Vec<KeyMaterial>>,
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
    let (_, rotated) = svc.issue_key(a.org_id, a.system_id).await.unwrap();
    assert!(svc.authenticate_api_key(&rotated, None).await.is_ok());
    assert!(
        svc.authenticate_api_key(&a.api_key, None).await.is_ok(),
        "rotation overlaps: the old key still works"
    );
}
