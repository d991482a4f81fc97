//! A service's replica of the organisation hierarchy (issue 4 §3): lineages applied in any
//! order and any number of times give the same subtrees; a later lineage replaces an earlier
//! one; a malformed message is refused without touching the replica; the filter always admits
//! the root itself. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

use etx_domain::OrgId;
use etx_storage::org_tree::{ApplyError, announcements};
use etx_storage::testing::TestDb;
use etx_storage::{OrgLineage, OrgReplica, OrgTreeMigration};
use sea_orm::DatabaseConnection;
use sea_orm_migration::{MigrationTrait, SchemaManager};
use std::collections::BTreeSet;

const TABLE: &str = "test_org_tree";

async fn setup(backend: &str) -> (TestDb, DatabaseConnection, OrgReplica) {
    let tdb = TestDb::of(backend).await;
    let db = tdb.connect().await;
    let m = OrgTreeMigration {
        name: "test_m0001_org_tree",
        table: TABLE,
    };
    m.up(&SchemaManager::new(&db)).await.unwrap();
    // Twice: the migration is idempotent.
    m.up(&SchemaManager::new(&db)).await.unwrap();
    let replica = OrgReplica::new(db.clone(), TABLE);
    (tdb, db, replica)
}

fn lineage(org: OrgId, ancestors: &[OrgId]) -> OrgLineage {
    OrgLineage {
        org_id: org,
        ancestors: ancestors.to_vec(),
    }
}

async fn subtree(r: &OrgReplica, root: OrgId) -> BTreeSet<OrgId> {
    r.subtree(root).await.unwrap().into_iter().collect()
}

async fn lineages_in_any_order_give_one_tree(backend: &str) {
    let (tdb, _db, r) = setup(backend).await;
    let (ministry, hcm, hn, dept, commune) = (
        OrgId::new(),
        OrgId::new(),
        OrgId::new(),
        OrgId::new(),
        OrgId::new(),
    );
    // Children before parents, and one message twice.
    let all = [
        lineage(commune, &[dept, hcm, ministry]),
        lineage(dept, &[hcm, ministry]),
        lineage(hn, &[ministry]),
        lineage(hcm, &[ministry]),
        lineage(ministry, &[]),
    ];
    r.apply(&all[..2]).await.unwrap();
    r.apply(&all).await.unwrap();
    r.apply(&all[1..]).await.unwrap();
    assert_eq!(
        subtree(&r, ministry).await,
        BTreeSet::from([ministry, hcm, hn, dept, commune])
    );
    assert_eq!(subtree(&r, hcm).await, BTreeSet::from([hcm, dept, commune]));
    assert_eq!(subtree(&r, hn).await, BTreeSet::from([hn]));
    assert_eq!(subtree(&r, commune).await, BTreeSet::from([commune]));
    // An organisation the replica does not know yet still is its own subtree.
    let unknown = OrgId::new();
    assert_eq!(subtree(&r, unknown).await, BTreeSet::from([unknown]));

    // A later lineage replaces the earlier one (the department moves to Hà Nội); its commune's
    // new lineage comes with it (identity's start-up snapshot re-announces every lineage).
    r.apply(&[
        lineage(dept, &[hn, ministry]),
        lineage(commune, &[dept, hn, ministry]),
    ])
    .await
    .unwrap();
    assert_eq!(subtree(&r, hcm).await, BTreeSet::from([hcm]));
    assert_eq!(subtree(&r, hn).await, BTreeSet::from([hn, dept, commune]));
    // Within one batch the last lineage of an organisation wins.
    r.apply(&[lineage(dept, &[ministry]), lineage(dept, &[hcm, ministry])])
        .await
        .unwrap();
    assert!(subtree(&r, hcm).await.contains(&dept));
    tdb.cleanup().await.unwrap();
}

async fn messages_round_trip_and_malformed_ones_are_refused(backend: &str) {
    let (tdb, _db, r) = setup(backend).await;
    let root = OrgId::new();
    let many: Vec<OrgLineage> = std::iter::once(lineage(root, &[]))
        .chain((0..1_200).map(|_| lineage(OrgId::new(), &[root])))
        .collect();
    let entries = announcements(&many);
    assert_eq!(entries.len(), 3, "500 lineages per message");
    assert!(entries.iter().all(|e| e.stream == etx_storage::ORGS_STREAM));
    for e in &entries {
        r.apply_message(&e.body).await.unwrap();
    }
    assert_eq!(subtree(&r, root).await.len(), 1_201);

    for bad in [
        &b"not json"[..],
        br#"{"kind":"something.else","orgs":[]}"#,
        br#"{"kind":"orgs.lineage","orgs":[{"org_id":"not-a-uuid","ancestors":[]}]}"#,
    ] {
        assert!(matches!(
            r.apply_message(bad).await,
            Err(ApplyError::Malformed(_))
        ));
    }
    let deep: Vec<OrgId> = (0..40).map(|_| OrgId::new()).collect();
    let body =
        serde_json::json!({"kind": "orgs.lineage", "orgs": [{"org_id": OrgId::new(), "ancestors": deep}]});
    assert!(matches!(
        r.apply_message(body.to_string().as_bytes()).await,
        Err(ApplyError::Malformed(_))
    ));
    assert_eq!(subtree(&r, root).await.len(), 1_201, "nothing changed");
    tdb.cleanup().await.unwrap();
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name("sqlite").await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name("postgres").await
            }
        }
    };
}

both!(lineages_in_any_order_give_one_tree);
both!(messages_round_trip_and_malformed_ones_are_refused);
