//! The sea-orm adapter of [`WarningStore`] (R-SEC-7): recent sign-in attempts for the
//! early-warning detectors, and the `security_alerts` table that keeps one incident to one
//! event across every identity instance.

use super::entities::{login_attempt, security_alert};
use super::{SeaIdentityStore, corrupt, map_err};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use etx_domain::UserId;
use etx_identity_core::{LoginAttempt, LoginOutcome, StoreError, WarningStore};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select, Set};

fn to_attempt(m: login_attempt::Model) -> Result<LoginAttempt, StoreError> {
    Ok(LoginAttempt {
        at: m.at,
        username: m.username,
        user_id: m.user_id.map(UserId::from_uuid),
        ip: m.ip,
        outcome: LoginOutcome::parse(&m.outcome).ok_or_else(|| corrupt("sign-in outcome"))?,
    })
}

impl SeaIdentityStore {
    async fn rejections(
        &self,
        q: Select<login_attempt::Entity>,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LoginAttempt>, StoreError> {
        q.filter(login_attempt::Column::At.gte(since))
            .filter(login_attempt::Column::Outcome.ne(LoginOutcome::Ok.as_str()))
            .order_by_desc(login_attempt::Column::At)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(map_err)?
            .into_iter()
            .map(to_attempt)
            .collect()
    }

    fn alert(kind: &str, subject: &str) -> Select<security_alert::Entity> {
        security_alert::Entity::find()
            .filter(security_alert::Column::Kind.eq(kind))
            .filter(security_alert::Column::Subject.eq(subject))
    }
}

#[async_trait]
impl WarningStore for SeaIdentityStore {
    async fn rejections_of_username(
        &self,
        username: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LoginAttempt>, StoreError> {
        let q = login_attempt::Entity::find().filter(login_attempt::Column::Username.eq(username));
        self.rejections(q, since, limit).await
    }

    async fn rejections_from_ip(
        &self,
        ip: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LoginAttempt>, StoreError> {
        let q = login_attempt::Entity::find().filter(login_attempt::Column::Ip.eq(ip));
        self.rejections(q, since, limit).await
    }

    async fn sign_in_addresses(
        &self,
        user: UserId,
        since: DateTime<Utc>,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let ips: Vec<Option<String>> = login_attempt::Entity::find()
            .select_only()
            .column(login_attempt::Column::Ip)
            .distinct()
            .filter(login_attempt::Column::UserId.eq(user.as_uuid()))
            .filter(login_attempt::Column::Outcome.eq(LoginOutcome::Ok.as_str()))
            .filter(login_attempt::Column::At.gte(since))
            .filter(login_attempt::Column::At.lt(before))
            .filter(login_attempt::Column::Ip.is_not_null())
            .limit(u64::from(limit))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(map_err)?;
        Ok(ips.into_iter().flatten().collect())
    }

    async fn signed_in_before(&self, user: UserId, before: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(login_attempt::Entity::find()
            .select_only()
            .column(login_attempt::Column::Id)
            .filter(login_attempt::Column::UserId.eq(user.as_uuid()))
            .filter(login_attempt::Column::Outcome.eq(LoginOutcome::Ok.as_str()))
            .filter(login_attempt::Column::At.lt(before))
            .into_tuple::<uuid::Uuid>()
            .one(&self.db)
            .await
            .map_err(map_err)?
            .is_some())
    }

    async fn claim_alert(
        &self,
        kind: &str,
        subject: &str,
        event_key: &str,
        now: DateTime<Utc>,
        quiet_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // A read first: a client hammering with a revoked key finds the alert quiet without
        // taking a write lock.
        let existing = Self::alert(kind, subject).one(&self.db).await.map_err(map_err)?;
        if existing.as_ref().is_some_and(|a| a.quiet_until > now) {
            return Ok(false);
        }
        // Then one conditional statement decides between racing instances: the UPDATE of an
        // alert that is no longer quiet, or the INSERT of a new one (a concurrent insert makes
        // it a no-op).
        if existing.is_some() {
            let r = security_alert::Entity::update_many()
                .col_expr(security_alert::Column::EventKey, Expr::value(event_key))
                .col_expr(security_alert::Column::RaisedAt, Expr::value(now))
                .col_expr(security_alert::Column::QuietUntil, Expr::value(quiet_until))
                .filter(security_alert::Column::Kind.eq(kind))
                .filter(security_alert::Column::Subject.eq(subject))
                .filter(security_alert::Column::QuietUntil.lte(now))
                .exec(&self.db)
                .await
                .map_err(map_err)?;
            return Ok(r.rows_affected == 1);
        }
        let inserted = security_alert::Entity::insert(security_alert::ActiveModel {
            kind: Set(kind.to_owned()),
            subject: Set(subject.to_owned()),
            event_key: Set(event_key.to_owned()),
            raised_at: Set(now),
            quiet_until: Set(quiet_until),
        })
        .on_conflict(
            OnConflict::columns([security_alert::Column::Kind, security_alert::Column::Subject])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(map_err)?;
        Ok(inserted == 1)
    }

    async fn extend_alert(
        &self,
        kind: &str,
        subject: &str,
        now: DateTime<Utc>,
        quiet_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let r = security_alert::Entity::update_many()
            .col_expr(security_alert::Column::QuietUntil, Expr::value(quiet_until))
            .filter(security_alert::Column::Kind.eq(kind))
            .filter(security_alert::Column::Subject.eq(subject))
            .filter(security_alert::Column::QuietUntil.gt(now))
            .exec(&self.db)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected == 1)
    }

    async fn release_alert(&self, kind: &str, subject: &str) -> Result<(), StoreError> {
        security_alert::Entity::delete_many()
            .filter(security_alert::Column::Kind.eq(kind))
            .filter(security_alert::Column::Subject.eq(subject))
            .exec(&self.db)
            .await
            .map_err(map_err)
            .map(|_| ())
    }
}
