//! The vulnerability register's use cases (R-SEC-8): register, read, list and change
//! findings — every change recorded in the audit log — and the overdue scan that emits one
//! security event per newly overdue finding.

use crate::model::{Actor, NewAuditEntry};
use crate::ports::{AuditSink, EventError, FindingStore, SecurityEvent, SecurityEvents, StoreError};
use crate::vuln::{
    Finding, FindingChanges, FindingDraft, FindingFilter, FindingId, FindingPatchDraft, NewFinding,
    OverdueNotice, vietnam_date,
};
use chrono::{DateTime, Utc};
use etx_domain::FieldViolation;
use std::sync::Arc;

/// Kind of the event emitted for an overdue finding.
pub const OVERDUE_EVENT: &str = "vulnerability.overdue";

/// How many times a change is retried when another change to the same finding came first.
const UPDATE_ATTEMPTS: usize = 3;

/// Why a register use case failed.
#[derive(Debug, thiserror::Error)]
pub enum VulnError {
    /// No finding with this id.
    #[error("not found")]
    NotFound,
    /// The input breaks these rules.
    #[error("{} invalid field(s)", .0.len())]
    Invalid(Vec<FieldViolation>),
    /// Other changes kept coming first.
    #[error("the finding keeps changing; retry")]
    Busy,
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<StoreError> for VulnError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

impl From<EventError> for VulnError {
    fn from(e: EventError) -> Self {
        Self::Unknown(e.0)
    }
}

/// The register, generic over its store.
#[derive(Debug)]
pub struct Vulnerabilities<S> {
    store: S,
    audit: Arc<dyn AuditSink>,
}

impl<S: FindingStore> Vulnerabilities<S> {
    /// The register over `store`, recording changes in `audit`.
    pub fn new(store: S, audit: Arc<dyn AuditSink>) -> Self {
        Self { store, audit }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Registers a finding (status `open`) and records `vulnerability.create`.
    #[tracing::instrument(skip_all, fields(subject = %actor.subject))]
    pub async fn create(
        &self,
        actor: &Actor,
        draft: &FindingDraft,
        now: DateTime<Utc>,
    ) -> Result<Finding, VulnError> {
        let f = NewFinding::parse(draft)
            .map_err(VulnError::Invalid)?
            .register(now);
        self.store.insert(&f).await?;
        self.audit.record(NewAuditEntry::admin_action(
            actor,
            "vulnerability.create",
            serde_json::json!({
                "finding_id": f.id,
                "severity": f.severity,
                "status_after": f.status,
                "deadline": f.deadline,
            }),
        ));
        Ok(f)
    }

    /// One finding.
    pub async fn get(&self, id: FindingId) -> Result<Finding, VulnError> {
        self.store.get(id).await?.ok_or(VulnError::NotFound)
    }

    /// The findings matching `filter` at `now`, oldest first.
    pub async fn list(&self, filter: FindingFilter, now: DateTime<Utc>) -> Result<Vec<Finding>, VulnError> {
        let mut v = self.store.list(&filter).await?;
        if let Some(want) = filter.overdue {
            v.retain(|f| f.is_overdue(now) == want);
        }
        Ok(v)
    }

    /// Changes a finding (checking the status change against the current status) and records
    /// `vulnerability.update` with the fields changed and the status before and after.
    #[tracing::instrument(skip_all, fields(subject = %actor.subject, finding = %id))]
    pub async fn update(
        &self,
        actor: &Actor,
        id: FindingId,
        draft: &FindingPatchDraft,
        now: DateTime<Utc>,
    ) -> Result<Finding, VulnError> {
        let changes = FindingChanges::parse(draft).map_err(VulnError::Invalid)?;
        for _ in 0..UPDATE_ATTEMPTS {
            let before = self.get(id).await?;
            let after = before.apply(&changes, now).map_err(VulnError::Invalid)?;
            if self.store.update(&after, before.version).await? {
                self.audit.record(NewAuditEntry::admin_action(
                    actor,
                    "vulnerability.update",
                    serde_json::json!({
                        "finding_id": id,
                        "fields": changes.fields(),
                        "status_before": before.status,
                        "status_after": after.status,
                        "version": after.version,
                    }),
                ));
                return Ok(after);
            }
        }
        Err(VulnError::Busy)
    }

    /// Emits one `vulnerability.overdue` event for each finding that needs one at `now` (see
    /// [`Finding::needs_overdue_notice`]) and remembers it. Returns how many were emitted.
    ///
    /// The event is stored before the finding is marked, so a crash in between emits it again
    /// on the next scan — with the same key (`vulnerability.overdue:<id>:<deadline>`), which
    /// consumers deduplicate.
    #[tracing::instrument(skip_all)]
    pub async fn scan_overdue(
        &self,
        events: &dyn SecurityEvents,
        now: DateTime<Utc>,
    ) -> Result<usize, VulnError> {
        let today = vietnam_date(now);
        let mut emitted = 0;
        for f in self.store.past_deadline(today).await? {
            if !f.needs_overdue_notice(now) {
                continue;
            }
            let days_overdue = (today - f.deadline).num_days();
            let event = SecurityEvent {
                at: now,
                ..SecurityEvent::new(
                    OVERDUE_EVENT,
                    f.severity,
                    format!("{OVERDUE_EVENT}:{}:{}", f.id, f.deadline),
                    serde_json::json!({
                        "finding_id": f.id,
                        "title": f.title,
                        "component": f.component,
                        "owner": f.owner,
                        "severity": f.severity,
                        "status": f.status,
                        "deadline": f.deadline,
                        "days_overdue": days_overdue,
                    }),
                )
            };
            events.emit(event).await?;
            self.store
                .mark_overdue_notice(
                    f.id,
                    OverdueNotice {
                        deadline: f.deadline,
                        on: today,
                    },
                )
                .await?;
            tracing::warn!(finding = %f.id, severity = %f.severity, days_overdue, "vulnerability finding overdue");
            emitted += 1;
        }
        Ok(emitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MemorySink;
    use crate::vuln::{FindingStatus, Severity};
    use chrono::{NaiveDate, TimeZone};
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Fake {
        rows: Mutex<Vec<Finding>>,
        /// Makes the next N updates lose the race.
        lose: Mutex<usize>,
    }

    #[async_trait::async_trait]
    impl FindingStore for Fake {
        async fn insert(&self, f: &Finding) -> Result<(), StoreError> {
            self.rows
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .push(f.clone());
            Ok(())
        }
        async fn get(&self, id: FindingId) -> Result<Option<Finding>, StoreError> {
            Ok(self
                .rows
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .iter()
                .find(|f| f.id == id)
                .cloned())
        }
        async fn list(&self, filter: &FindingFilter) -> Result<Vec<Finding>, StoreError> {
            Ok(self
                .rows
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .iter()
                .filter(|f| filter.status.is_none_or(|s| f.status == s))
                .filter(|f| filter.severity.is_none_or(|s| f.severity == s))
                .cloned()
                .collect())
        }
        async fn update(&self, f: &Finding, expected: i64) -> Result<bool, StoreError> {
            let mut lose = self.lose.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            if *lose > 0 {
                *lose -= 1;
                return Ok(false);
            }
            let mut rows = self.rows.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            match rows.iter_mut().find(|r| r.id == f.id && r.version == expected) {
                Some(r) => {
                    *r = f.clone();
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        async fn past_deadline(&self, date: NaiveDate) -> Result<Vec<Finding>, StoreError> {
            Ok(self
                .rows
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .iter()
                .filter(|f| f.status.awaits_remediation() && f.deadline < date)
                .cloned()
                .collect())
        }
        async fn mark_overdue_notice(&self, id: FindingId, n: OverdueNotice) -> Result<(), StoreError> {
            let mut rows = self.rows.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            if let Some(r) = rows.iter_mut().find(|r| r.id == id) {
                r.overdue_notice = Some(n);
            }
            Ok(())
        }
    }

    #[derive(Debug, Default)]
    struct Events(Mutex<Vec<SecurityEvent>>);

    #[async_trait::async_trait]
    impl SecurityEvents for Events {
        async fn emit(&self, e: SecurityEvent) -> Result<(), EventError> {
            self.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(e);
            Ok(())
        }
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 3, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn actor() -> Actor {
        Actor {
            subject: "user:officer".into(),
            org_id: None,
            ip: None,
        }
    }

    fn draft(deadline: &str, severity: &str) -> FindingDraft {
        FindingDraft {
            title: Some("Outdated OpenSSL".into()),
            description: Some("CVE-2026-0001".into()),
            severity: Some(severity.into()),
            component: Some("infra/nginx".into()),
            remediation_plan: Some("upgrade".into()),
            owner: Some("ops".into()),
            deadline: Some(deadline.into()),
        }
    }

    fn register() -> (Vulnerabilities<Fake>, Arc<MemorySink>) {
        let sink = Arc::new(MemorySink::new());
        (Vulnerabilities::new(Fake::default(), sink.clone()), sink)
    }

    #[tokio::test]
    async fn every_change_is_audited_with_the_status_before_and_after() {
        let (svc, sink) = register();
        let f = svc
            .create(&actor(), &draft("2027-03-01", "high"), at(2027, 1, 1))
            .await
            .unwrap();
        let patch = FindingPatchDraft {
            status: Some("in_progress".into()),
            ..Default::default()
        };
        svc.update(&actor(), f.id, &patch, at(2027, 1, 2)).await.unwrap();
        let e = sink.entries();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].action.as_deref(), Some("vulnerability.create"));
        assert_eq!(e[1].action.as_deref(), Some("vulnerability.update"));
        assert_eq!(e[1].detail["status_before"], "open");
        assert_eq!(e[1].detail["status_after"], "in_progress");
        assert_eq!(e[1].subject, "user:officer");
    }

    #[tokio::test]
    async fn refused_changes_are_not_audited_and_unknown_ids_are_not_found() {
        let (svc, sink) = register();
        let f = svc
            .create(&actor(), &draft("2027-03-01", "low"), at(2027, 1, 1))
            .await
            .unwrap();
        let close = FindingPatchDraft {
            status: Some("closed".into()),
            ..Default::default()
        };
        assert!(matches!(
            svc.update(&actor(), f.id, &close, at(2027, 1, 2)).await,
            Err(VulnError::Invalid(_))
        ));
        assert!(matches!(
            svc.update(&actor(), FindingId::new(), &close, at(2027, 1, 2))
                .await,
            Err(VulnError::NotFound)
        ));
        assert!(matches!(
            svc.get(FindingId::new()).await,
            Err(VulnError::NotFound)
        ));
        assert_eq!(sink.entries().len(), 1);
    }

    #[tokio::test]
    async fn a_lost_race_is_retried_against_the_new_version() {
        let (svc, _) = register();
        let f = svc
            .create(&actor(), &draft("2027-03-01", "low"), at(2027, 1, 1))
            .await
            .unwrap();
        *svc.store().lose.lock().unwrap() = 2;
        let patch = FindingPatchDraft {
            owner: Some("sec".into()),
            ..Default::default()
        };
        assert_eq!(
            svc.update(&actor(), f.id, &patch, at(2027, 1, 2))
                .await
                .unwrap()
                .version,
            2
        );
        *svc.store().lose.lock().unwrap() = 3;
        assert!(matches!(
            svc.update(&actor(), f.id, &patch, at(2027, 1, 2)).await,
            Err(VulnError::Busy)
        ));
    }

    #[tokio::test]
    async fn the_overdue_scan_emits_once_per_newly_overdue_finding() {
        let (svc, _) = register();
        let late = svc
            .create(&actor(), &draft("2027-03-01", "critical"), at(2027, 1, 1))
            .await
            .unwrap();
        svc.create(&actor(), &draft("2027-04-01", "high"), at(2027, 1, 1))
            .await
            .unwrap();
        let done = svc
            .create(&actor(), &draft("2027-02-01", "high"), at(2027, 1, 1))
            .await
            .unwrap();
        let fixed = FindingPatchDraft {
            status: Some("remediated".into()),
            ..Default::default()
        };
        svc.update(&actor(), done.id, &fixed, at(2027, 1, 5))
            .await
            .unwrap();

        let events = Events::default();
        assert_eq!(
            svc.scan_overdue(&events, at(2027, 3, 1)).await.unwrap(),
            0,
            "due today is not overdue"
        );
        assert_eq!(svc.scan_overdue(&events, at(2027, 3, 2)).await.unwrap(), 1);
        assert_eq!(svc.scan_overdue(&events, at(2027, 3, 2)).await.unwrap(), 0);
        assert_eq!(svc.scan_overdue(&events, at(2027, 3, 20)).await.unwrap(), 0);
        let got = events.0.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, OVERDUE_EVENT);
        assert_eq!(got[0].severity, Severity::Critical);
        assert_eq!(got[0].evidence["finding_id"], serde_json::json!(late.id));
        assert_eq!(got[0].evidence["days_overdue"], 1);
        assert_eq!(
            got[0].key,
            format!("vulnerability.overdue:{}:2027-03-01", late.id)
        );

        let listed = svc
            .list(
                FindingFilter {
                    overdue: Some(true),
                    ..Default::default()
                },
                at(2027, 3, 20),
            )
            .await
            .unwrap();
        assert_eq!(listed.iter().map(|f| f.id).collect::<Vec<_>>(), vec![late.id]);
        let open = svc
            .list(
                FindingFilter {
                    status: Some(FindingStatus::Open),
                    overdue: Some(false),
                    ..Default::default()
                },
                at(2027, 3, 20),
            )
            .await
            .unwrap();
        assert_eq!(open.len(), 1);
    }
}
