//! The masking policy's versions and the re-identification log, against both backends (issue
//! 5 §2; R-SEC-10, R-DATA-3): version 1 is the built-in policy, stored once however many
//! processes start; a version is published only as the current version + 1, also when two
//! editors race; a document that breaks rules names every violation; a version edited in the
//! database is never applied; every re-identification attempt is logged with a hash of the
//! token and never a clear value.
//!
//! Each test runs on a fresh SQLite file and on a fresh PostgreSQL database (`ETX_TEST_PG_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`; required, never skipped).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use etx_crypto::MasterKey;
use etx_domain::{OrgId, RecordId, ViolationCode};
use etx_masking::{AppMasking, Author, PolicyStoreError, PublishError, Refusal, ReidOutcome, ReidRequest};
use etx_masking_core::{
    BUILTIN_POLICY, Detector, Masker, PayloadVault, Purpose, RecordSource, SourceError, SourceRecord,
    TokenKeys,
};
use etx_storage::testing::TestDb;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// No record is ever asked for here.
#[derive(Debug)]
struct NoRecords;

#[async_trait]
impl RecordSource for NoRecords {
    async fn fetch(&self, _ids: &[RecordId]) -> Result<Vec<SourceRecord>, SourceError> {
        Ok(Vec::new())
    }
}

/// Nothing is ever sealed here.
#[derive(Debug)]
struct NoVault;

#[async_trait]
impl PayloadVault for NoVault {
    async fn seal(&self, _org: OrgId, _record: RecordId, plain: &[u8]) -> Result<Vec<u8>, SourceError> {
        Ok(plain.to_vec())
    }
    async fn open(&self, _org: OrgId, _record: RecordId, sealed: &[u8]) -> Result<Vec<u8>, SourceError> {
        Ok(sealed.to_vec())
    }
}

fn masker() -> Masker {
    Masker::new(
        TokenKeys::new(MasterKey::generate("mk-masking-test")),
        Detector::for_today(),
    )
}

/// A masking process over `db` (migrations, version 1 and all).
async fn process(db: &DatabaseConnection, masker: Masker) -> AppMasking {
    AppMasking::build(db.clone(), Arc::new(NoRecords), masker, Arc::new(NoVault), None)
        .await
        .unwrap()
}

/// The built-in document as version `version`, with the analysts' expert phone kept to its
/// last `keep_last` digits.
fn version(version: u32, keep_last: u32) -> Value {
    let mut doc: Value = serde_json::from_str(BUILTIN_POLICY).unwrap();
    doc["version"] = json!(version);
    doc["description"] = json!(format!(
        "Phiên bản {version}: SĐT chuyên gia giữ {keep_last} số cuối"
    ));
    let rule = doc["fields"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["category"] == "workforce" && r["field"] == "/expert/phone")
        .unwrap();
    rule["audiences"]["analyst"] = json!({ "op": "partial", "keep_last": keep_last });
    doc
}

fn author(org: OrgId) -> Author<'static> {
    Author {
        subject: "user:0190f5c2-6a3e-7c1d-9f00-2b7e4c1a9d11",
        org_id: Some(org),
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = etx_storage::testing::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = etx_storage::testing::TestDb::postgres().await;
                    super::$name(&db).await;
                    let _ = db.cleanup().await;
                }
            )*
        }
    };
}

both_backends!(
    the_builtin_policy_is_version_1_stored_once_by_the_first_process,
    only_the_current_version_plus_one_is_published_and_a_check_stores_nothing,
    a_document_that_breaks_rules_names_every_violation_with_its_pointer,
    two_editors_publishing_the_same_version_at_once_get_one_version_and_one_conflict,
    a_version_edited_in_the_database_is_never_applied,
    every_reidentification_attempt_is_logged_with_a_token_hash_and_no_clear_value,
);

async fn the_builtin_policy_is_version_1_stored_once_by_the_first_process(t: &TestDb) {
    let db = t.connect().await;
    // The schema first (SQLite has no cross-process migration lock: all-in-one is one
    // process), then two processes storing version 1 at once.
    etx_masking::migrate(&db).await.unwrap();
    let (a, b) = tokio::join!(process(&db, masker()), process(&db, masker()));
    let versions = a.policies().list().await.unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");
    let v1 = &versions[0];
    assert_eq!(
        (v1.version, v1.created_by.as_str(), v1.created_by_org),
        (1, "system", None)
    );
    let builtin: Value = serde_json::from_str(BUILTIN_POLICY).unwrap();
    assert_eq!(
        v1.sha256,
        hex_sha256(&etx_domain::canonical_json::to_vec(&builtin))
    );
    let current = b.policies().current_stored().await.unwrap().unwrap();
    assert_eq!(current.document, builtin);
    assert_eq!(current.policy.version(), 1);
    assert_eq!(a.policies().cached().version(), 1);
    // A process started later finds it and stores nothing.
    let c = process(&db, masker()).await;
    assert_eq!(c.policies().list().await.unwrap(), versions);
}

async fn only_the_current_version_plus_one_is_published_and_a_check_stores_nothing(t: &TestDb) {
    let db = t.connect().await;
    let app = process(&db, masker()).await;
    let org = OrgId::new();
    let store = app.policies();
    for wrong in [1, 3] {
        match store.publish(&version(wrong, 2), author(org), Utc::now()).await {
            Err(PublishError::Conflict { current, proposed }) => assert_eq!((current, proposed), (1, wrong)),
            other => panic!("version {wrong}: {other:?}"),
        }
    }
    // The dry run: valid, next version, nothing stored.
    assert_eq!(store.check(&version(2, 2)).await.unwrap().version(), 2);
    assert_eq!(store.current_version().await.unwrap(), Some(1));

    let v2 = store
        .publish(&version(2, 2), author(org), Utc::now())
        .await
        .unwrap();
    assert_eq!(v2.meta.version, 2);
    assert_eq!(v2.meta.created_by_org, Some(org));
    assert!(v2.meta.description.as_deref().unwrap().starts_with("Phiên bản 2"));
    assert_eq!(
        store.cached().version(),
        2,
        "the publishing process takes it at once"
    );
    match store.publish(&version(2, 1), author(org), Utc::now()).await {
        Err(PublishError::Conflict { current, proposed }) => assert_eq!((current, proposed), (2, 2)),
        other => panic!("{other:?}"),
    }
    match store.check(&version(2, 1)).await {
        Err(PublishError::Conflict { current, .. }) => assert_eq!(current, 2),
        other => panic!("{other:?}"),
    }
    let listed: Vec<u32> = store.list().await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(listed, [2, 1], "newest first");
    // Versions are immutable: version 1 is as it was.
    let v1 = store.get(1).await.unwrap().unwrap();
    assert_eq!(
        v1.document,
        serde_json::from_str::<Value>(BUILTIN_POLICY).unwrap()
    );
    assert!(store.get(3).await.unwrap().is_none());
}

async fn a_document_that_breaks_rules_names_every_violation_with_its_pointer(t: &TestDb) {
    let db = t.connect().await;
    let app = process(&db, masker()).await;
    let mut doc = version(2, 2);
    doc["colour"] = json!("blue");
    doc["fields"][0]["audiences"]["public"] = json!({ "op": "keep" });
    doc["fields"][1]["audiences"]["analyst"] = json!({ "op": "shred" });
    for result in [
        app.policies().check(&doc).await,
        app.policies()
            .publish(&doc, author(OrgId::new()), Utc::now())
            .await
            .map(|s| (*s.policy).clone()),
    ] {
        let Err(PublishError::Invalid(violations)) = result else {
            panic!("{result:?}");
        };
        let found: Vec<(&str, ViolationCode)> =
            violations.iter().map(|v| (v.path.as_str(), v.code)).collect();
        for want in [
            ("/colour", ViolationCode::UnknownField),
            ("/fields/0/audiences/public", ViolationCode::Invalid),
            ("/fields/1/audiences/analyst/op", ViolationCode::Enum),
        ] {
            assert!(found.contains(&want), "{want:?} not in {found:?}");
        }
    }
    assert_eq!(app.policies().current_version().await.unwrap(), Some(1));
}

async fn two_editors_publishing_the_same_version_at_once_get_one_version_and_one_conflict(t: &TestDb) {
    let db = t.connect().await;
    let a = process(&db, masker()).await;
    let b = process(&db, masker()).await;
    let org = OrgId::new();
    let (doc_a, doc_b) = (version(2, 2), version(2, 1));
    let (ra, rb) = tokio::join!(
        a.policies().publish(&doc_a, author(org), Utc::now()),
        b.policies().publish(&doc_b, author(org), Utc::now()),
    );
    let (won, lost) = match (ra, rb) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("exactly one must win: {other:?}"),
    };
    assert_eq!(won.meta.version, 2);
    assert!(
        matches!(
            lost,
            PublishError::Conflict {
                current: 2,
                proposed: 2
            }
        ),
        "{lost:?}"
    );
    assert_eq!(a.policies().list().await.unwrap().len(), 2);
}

async fn a_version_edited_in_the_database_is_never_applied(t: &TestDb) {
    let db = t.connect().await;
    let app = process(&db, masker()).await;
    app.policies()
        .publish(&version(2, 2), author(OrgId::new()), Utc::now())
        .await
        .unwrap();
    // Someone with database access turns the analysts' phone rule into `keep`.
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        r#"UPDATE masking_policies SET document = REPLACE(document, '"keep_last":2', '"keep_last":9') WHERE version = 2"#,
    ))
    .await
    .unwrap();
    assert!(matches!(
        app.policies().get(2).await,
        Err(PolicyStoreError::Corrupt { version: 2, .. })
    ));
    // A process starting now refuses to mask with it rather than mask with something else.
    let started = AppMasking::build(db.clone(), Arc::new(NoRecords), masker(), Arc::new(NoVault), None).await;
    assert!(started.is_err());
}

async fn every_reidentification_attempt_is_logged_with_a_token_hash_and_no_clear_value(t: &TestDb) {
    let db = t.connect().await;
    let masker = masker();
    let app = process(&db, masker.clone()).await;
    let purpose = Purpose::parse("citizen_id.reid").unwrap();
    let token = masker.keys().reversible_token(&purpose, "079190000123").unwrap();
    let keyed = masker.keys().token(&purpose, "079190000123");
    let (org_a, org_b) = (OrgId::new(), OrgId::new());
    fn req<'a>(org: OrgId, token: &'a str, purpose: &'a Purpose) -> ReidRequest<'a> {
        ReidRequest {
            actor: "user:an-ninh",
            org_id: org,
            ip: Some("10.0.0.7"),
            purpose,
            token,
            reason: "Hồ sơ vụ việc KN-2026-0042 (CCCD 079190000123) cần xác minh danh tính",
        }
    }
    let other = Purpose::parse("phone.reid").unwrap();

    let granted = match app.reidentify(req(org_a, &token, &purpose)).await.unwrap() {
        ReidOutcome::Granted { id, value } => {
            assert_eq!(value.as_str(), "079190000123");
            id
        }
        other => panic!("{other:?}"),
    };
    for (t, p, want) in [
        (keyed.as_str(), &purpose, Refusal::KeyedToken),
        ("rtk_!!!", &purpose, Refusal::NotAToken),
        ("not a token", &purpose, Refusal::NotAToken),
        (token.as_str(), &other, Refusal::WrongPurposeOrKey),
    ] {
        match app.reidentify(req(org_b, t, p)).await.unwrap() {
            ReidOutcome::Refused { refusal, .. } => assert_eq!(refusal, want, "{t}"),
            other => panic!("{t}: {other:?}"),
        }
    }

    let log = app.reidentifications();
    let all = log.list(None, None, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    let first = all.last().unwrap();
    assert_eq!(first.id, granted, "newest first");
    assert!(first.granted && first.refusal.is_none());
    assert_eq!(
        (
            first.actor.as_str(),
            first.actor_org,
            first.ip.as_deref(),
            first.purpose.as_str()
        ),
        ("user:an-ninh", org_a, Some("10.0.0.7"), "citizen_id.reid")
    );
    assert_eq!(first.token_sha256, hex_sha256(token.as_bytes()));
    assert!(
        first.reason.starts_with("Hồ sơ vụ việc KN-2026-0042") && !first.reason.contains("079190000123"),
        "identifiers in a reason are masked: {}",
        first.reason
    );
    let refusals: Vec<Option<&str>> = all.iter().map(|r| r.refusal.as_deref()).collect();
    assert_eq!(
        refusals,
        [
            Some("wrong_purpose_or_key"),
            Some("not_a_token"),
            Some("not_a_token"),
            Some("keyed_token"),
            None
        ]
    );
    // By organisation, and paged.
    let of_a = log.list(Some(&[org_a]), None, 100).await.unwrap();
    assert_eq!(of_a.iter().map(|r| r.id).collect::<Vec<_>>(), [granted]);
    assert!(log.list(Some(&[]), None, 100).await.unwrap().is_empty());
    let page = log.list(None, Some(all[1].id), 2).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        [all[2].id, all[3].id]
    );

    // No clear value and no token anywhere in the table.
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT actor, purpose, reason, token_sha256, outcome, refusal FROM masking_reidentifications",
        ))
        .await
        .unwrap();
    for r in rows {
        let text: String = ["actor", "purpose", "reason", "token_sha256", "outcome"]
            .iter()
            .map(|c| r.try_get::<String>("", c).unwrap())
            .collect::<Vec<_>>()
            .join("|");
        assert!(
            !text.contains("079190000123") && !text.contains(token.as_str()),
            "{text}"
        );
    }
}
