//! The sea-orm adapter of [`AccountStore`]: people, second factors, recovery codes, sessions,
//! sign-in attempts and identity's data keys (R-SEC-5, R-SEC-6), on SQLite or PostgreSQL.

use super::entities::{
    data_key, login_attempt, oidc_login, organisation, recovery_code, session, user, user_mfa,
};
use super::{SeaIdentityStore, corrupt, map_err, to_org};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use etx_crypto::WrappedDataKey;
use etx_domain::{OrgId, Organisation, UserId};
use etx_identity_core::oidc::PendingOidcLogin;
use etx_identity_core::{
    AccountStore, DisplayName, LoginAttempt, LoginOutcome, Roles, SessionId, SessionState, StoreError,
    StoredMfa, StoredSession, StoredUser, UserInfo, UserStatus, Username,
};
use sea_orm::ExprTrait;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

fn to_user(m: user::Model) -> Result<StoredUser, StoreError> {
    let roles: Vec<&str> = m.roles.split(',').filter(|r| !r.is_empty()).collect();
    Ok(StoredUser {
        info: UserInfo {
            id: UserId::from_uuid(m.id),
            username: Username::parse(&m.username).map_err(|_| corrupt("username"))?,
            display_name: DisplayName::parse(&m.display_name).map_err(|_| corrupt("display name"))?,
            org_id: OrgId::from_uuid(m.org_id),
            roles: Roles::parse(&roles).map_err(|_| corrupt("roles"))?,
            status: UserStatus::parse(&m.status).map_err(|_| corrupt("account status"))?,
            must_change_password: m.must_change_password,
            mfa_enabled: m.mfa_enabled,
            created_at: m.created_at,
            updated_at: m.updated_at,
        },
        password_hash: m.password_hash,
    })
}

fn to_session(m: session::Model) -> Result<StoredSession, StoreError> {
    Ok(StoredSession {
        id: SessionId::from_uuid(m.id),
        user_id: UserId::from_uuid(m.user_id),
        token_hash: m.token_hash,
        state: SessionState::parse(&m.state).ok_or_else(|| corrupt("session state"))?,
        created_at: m.created_at,
        last_seen_at: m.last_seen_at,
        expires_at: m.expires_at,
        ended_at: m.ended_at,
        ip: m.ip,
    })
}

fn to_wrapped(m: data_key::Model) -> WrappedDataKey {
    WrappedDataKey {
        id: m.id,
        master_key_id: m.master_key_id,
        wrapped: m.wrapped,
    }
}

/// Outcomes that count towards a lockout.
fn failure_names() -> Vec<&'static str> {
    LoginOutcome::ALL
        .into_iter()
        .filter(|o| o.is_failure())
        .map(LoginOutcome::as_str)
        .collect()
}

#[async_trait]
impl AccountStore for SeaIdentityStore {
    async fn organisations(&self) -> Result<Vec<Organisation>, StoreError> {
        organisation::Entity::find()
            .all(&self.db)
            .await
            .map_err(map_err)?
            .into_iter()
            .map(to_org)
            .collect()
    }

    async fn insert_user(&self, u: &StoredUser) -> Result<(), StoreError> {
        let i = &u.info;
        user::ActiveModel {
            id: Set(i.id.as_uuid()),
            username: Set(i.username.as_str().to_owned()),
            display_name: Set(i.display_name.as_str().to_owned()),
            org_id: Set(i.org_id.as_uuid()),
            roles: Set(i.roles.names().join(",")),
            status: Set(i.status.as_str().to_owned()),
            password_hash: Set(u.password_hash.clone()),
            must_change_password: Set(i.must_change_password),
            mfa_enabled: Set(i.mfa_enabled),
            created_at: Set(i.created_at),
            updated_at: Set(i.updated_at),
            password_changed_at: Set(i.created_at),
        }
        .insert(&self.db)
        .await
        .map_err(map_err)
        .map(|_| ())
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<StoredUser>, StoreError> {
        user::Entity::find_by_id(id.as_uuid())
            .one(&self.db)
            .await
            .map_err(map_err)?
            .map(to_user)
            .transpose()
    }

    async fn user_by_username(&self, username: &Username) -> Result<Option<StoredUser>, StoreError> {
        user::Entity::find()
            .filter(user::Column::Username.eq(username.as_str()))
            .one(&self.db)
            .await
            .map_err(map_err)?
            .map(to_user)
            .transpose()
    }

    async fn users_in(&self, orgs: &[OrgId]) -> Result<Vec<UserInfo>, StoreError> {
        if orgs.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        // Bounded IN lists: a deployment has a few thousand organisations at most.
        for chunk in orgs.chunks(500) {
            let rows = user::Entity::find()
                .filter(user::Column::OrgId.is_in(chunk.iter().map(OrgId::as_uuid)))
                .all(&self.db)
                .await
                .map_err(map_err)?;
            for r in rows {
                out.push(to_user(r)?.info);
            }
        }
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }

    async fn update_user(&self, i: &UserInfo) -> Result<(), StoreError> {
        user::Entity::update_many()
            .col_expr(user::Column::DisplayName, Expr::value(i.display_name.as_str()))
            .col_expr(user::Column::Roles, Expr::value(i.roles.names().join(",")))
            .col_expr(user::Column::Status, Expr::value(i.status.as_str()))
            .col_expr(
                user::Column::MustChangePassword,
                Expr::value(i.must_change_password),
            )
            .col_expr(user::Column::MfaEnabled, Expr::value(i.mfa_enabled))
            .col_expr(user::Column::UpdatedAt, Expr::value(i.updated_at))
            .filter(user::Column::Id.eq(i.id.as_uuid()))
            .exec(&self.db)
            .await
            .map_err(map_err)
            .map(|_| ())
    }

    async fn set_password(
        &self,
        id: UserId,
        password_hash: &str,
        must_change: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(user::Column::MustChangePassword, Expr::value(must_change))
            .col_expr(user::Column::PasswordChangedAt, Expr::value(at))
            .col_expr(user::Column::UpdatedAt, Expr::value(at))
            .filter(user::Column::Id.eq(id.as_uuid()))
            .exec(&self.db)
            .await
            .map_err(map_err)
            .map(|_| ())
    }

    async fn mfa(&self, u: UserId) -> Result<Option<StoredMfa>, StoreError> {
        Ok(user_mfa::Entity::find_by_id(u.as_uuid())
            .one(&self.db)
            .await
            .map_err(map_err)?
            .map(|m| StoredMfa {
                sealed_secret: m.sealed_secret,
                confirmed: m.confirmed,
                last_step: m.last_step,
            }))
    }

    async fn put_pending_mfa(&self, u: UserId, sealed: &[u8], at: DateTime<Utc>) -> Result<bool, StoreError> {
        let txn = etx_storage::begin_write(&self.db).await.map_err(map_err)?;
        let existing = user_mfa::Entity::find_by_id(u.as_uuid())
            .one(&txn)
            .await
            .map_err(map_err)?;
        match existing {
            Some(m) if m.confirmed => return Ok(false),
            Some(m) => {
                let mut am: user_mfa::ActiveModel = m.into();
                am.sealed_secret = Set(sealed.to_vec());
                am.created_at = Set(at);
                am.last_step = Set(None);
                am.update(&txn).await.map_err(map_err)?;
            }
            None => {
                user_mfa::ActiveModel {
                    user_id: Set(u.as_uuid()),
                    sealed_secret: Set(sealed.to_vec()),
                    confirmed: Set(false),
                    last_step: Set(None),
                    created_at: Set(at),
                    confirmed_at: Set(None),
                }
                .insert(&txn)
                .await
                .map_err(map_err)?;
            }
        }
        txn.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn confirm_mfa(
        &self,
        u: UserId,
        step: i64,
        recovery_hashes: &[Vec<u8>],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = etx_storage::begin_write(&self.db).await.map_err(map_err)?;
        let confirmed = user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::Confirmed, Expr::value(true))
            .col_expr(user_mfa::Column::LastStep, Expr::value(step))
            .col_expr(user_mfa::Column::ConfirmedAt, Expr::value(at))
            .filter(user_mfa::Column::UserId.eq(u.as_uuid()))
            .filter(user_mfa::Column::Confirmed.eq(false))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        if confirmed.rows_affected != 1 {
            txn.rollback().await.map_err(map_err)?;
            return Ok(false);
        }
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(u.as_uuid()))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        if !recovery_hashes.is_empty() {
            recovery_code::Entity::insert_many(recovery_hashes.iter().map(|h| recovery_code::ActiveModel {
                id: Set(uuid::Uuid::now_v7()),
                user_id: Set(u.as_uuid()),
                code_hash: Set(h.clone()),
                created_at: Set(at),
                used_at: Set(None),
            }))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        }
        user::Entity::update_many()
            .col_expr(user::Column::MfaEnabled, Expr::value(true))
            .col_expr(user::Column::UpdatedAt, Expr::value(at))
            .filter(user::Column::Id.eq(u.as_uuid()))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn advance_totp_step(&self, u: UserId, step: i64) -> Result<bool, StoreError> {
        // One conditional UPDATE: two sign-ins racing with the same code cannot both win.
        let r = user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::LastStep, Expr::value(step))
            .filter(user_mfa::Column::UserId.eq(u.as_uuid()))
            .filter(user_mfa::Column::Confirmed.eq(true))
            .filter(
                user_mfa::Column::LastStep
                    .is_null()
                    .or(user_mfa::Column::LastStep.lt(step)),
            )
            .exec(&self.db)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected == 1)
    }

    async fn use_recovery_code(&self, u: UserId, hash: &[u8], at: DateTime<Utc>) -> Result<bool, StoreError> {
        let r = recovery_code::Entity::update_many()
            .col_expr(recovery_code::Column::UsedAt, Expr::value(at))
            .filter(recovery_code::Column::UserId.eq(u.as_uuid()))
            .filter(recovery_code::Column::CodeHash.eq(hash.to_vec()))
            .filter(recovery_code::Column::UsedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected == 1)
    }

    async fn recovery_codes_left(&self, u: UserId) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(u.as_uuid()))
            .filter(recovery_code::Column::UsedAt.is_null())
            .count(&self.db)
            .await
            .map_err(map_err)
    }

    async fn insert_session(&self, s: &StoredSession) -> Result<(), StoreError> {
        session::ActiveModel {
            id: Set(s.id.as_uuid()),
            user_id: Set(s.user_id.as_uuid()),
            token_hash: Set(s.token_hash.clone()),
            state: Set(s.state.as_str().to_owned()),
            created_at: Set(s.created_at),
            last_seen_at: Set(s.last_seen_at),
            expires_at: Set(s.expires_at),
            ended_at: Set(s.ended_at),
            ip: Set(s.ip.clone()),
        }
        .insert(&self.db)
        .await
        .map_err(map_err)
        .map(|_| ())
    }

    async fn session_by_token_hash(&self, hash: &[u8]) -> Result<Option<StoredSession>, StoreError> {
        session::Entity::find()
            .filter(session::Column::TokenHash.eq(hash.to_vec()))
            .one(&self.db)
            .await
            .map_err(map_err)?
            .map(to_session)
            .transpose()
    }

    async fn touch_session(&self, id: SessionId, at: DateTime<Utc>) -> Result<(), StoreError> {
        session::Entity::update_many()
            .col_expr(session::Column::LastSeenAt, Expr::value(at))
            .filter(session::Column::Id.eq(id.as_uuid()))
            .exec(&self.db)
            .await
            .map_err(map_err)
            .map(|_| ())
    }

    async fn set_session_state(&self, id: SessionId, state: SessionState) -> Result<(), StoreError> {
        session::Entity::update_many()
            .col_expr(session::Column::State, Expr::value(state.as_str()))
            .filter(session::Column::Id.eq(id.as_uuid()))
            .exec(&self.db)
            .await
            .map_err(map_err)
            .map(|_| ())
    }

    async fn end_session(&self, id: SessionId, at: DateTime<Utc>) -> Result<(), StoreError> {
        session::Entity::update_many()
            .col_expr(session::Column::EndedAt, Expr::value(at))
            .filter(session::Column::Id.eq(id.as_uuid()))
            .filter(session::Column::EndedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(map_err)
            .map(|_| ())
    }

    async fn end_sessions_of(
        &self,
        u: UserId,
        except: Option<SessionId>,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut q = session::Entity::update_many()
            .col_expr(session::Column::EndedAt, Expr::value(at))
            .filter(session::Column::UserId.eq(u.as_uuid()))
            .filter(session::Column::EndedAt.is_null());
        if let Some(keep) = except {
            q = q.filter(session::Column::Id.ne(keep.as_uuid()));
        }
        Ok(q.exec(&self.db).await.map_err(map_err)?.rows_affected)
    }

    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = session::Entity::delete_many()
            .filter(
                session::Column::ExpiresAt
                    .lt(before)
                    .or(session::Column::EndedAt.lt(before)),
            )
            .exec(&self.db)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected)
    }

    async fn record_attempt(&self, a: &LoginAttempt) -> Result<(), StoreError> {
        login_attempt::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            at: Set(a.at),
            username: Set(a.username.clone()),
            user_id: Set(a.user_id.map(|u| u.as_uuid())),
            ip: Set(a.ip.clone()),
            outcome: Set(a.outcome.as_str().to_owned()),
        }
        .insert(&self.db)
        .await
        .map_err(map_err)
        .map(|_| ())
    }

    async fn failures_of_username(
        &self,
        username: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let last_ok = login_attempt::Entity::find()
            .filter(login_attempt::Column::Username.eq(username))
            .filter(login_attempt::Column::At.gte(since))
            .filter(login_attempt::Column::Outcome.eq(LoginOutcome::Ok.as_str()))
            .order_by_desc(login_attempt::Column::At)
            .one(&self.db)
            .await
            .map_err(map_err)?;
        let mut q = login_attempt::Entity::find()
            .filter(login_attempt::Column::Username.eq(username))
            .filter(login_attempt::Column::At.gte(since))
            .filter(login_attempt::Column::Outcome.is_in(failure_names()));
        if let Some(ok) = last_ok {
            q = q.filter(login_attempt::Column::At.gt(ok.at));
        }
        let rows = q
            .order_by_desc(login_attempt::Column::At)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().map(|r| r.at).collect())
    }

    async fn failures_from_ip(
        &self,
        ip: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let rows = login_attempt::Entity::find()
            .filter(login_attempt::Column::Ip.eq(ip))
            .filter(login_attempt::Column::At.gte(since))
            .filter(login_attempt::Column::Outcome.is_in(failure_names()))
            .order_by_desc(login_attempt::Column::At)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().map(|r| r.at).collect())
    }

    async fn insert_data_key(&self, k: &WrappedDataKey) -> Result<(), StoreError> {
        data_key::ActiveModel {
            id: Set(k.id),
            master_key_id: Set(k.master_key_id.clone()),
            wrapped: Set(k.wrapped.clone()),
            created_at: Set(Utc::now()),
        }
        .insert(&self.db)
        .await
        .map_err(map_err)
        .map(|_| ())
    }

    async fn data_key(&self, id: uuid::Uuid) -> Result<Option<WrappedDataKey>, StoreError> {
        Ok(data_key::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(map_err)?
            .map(to_wrapped))
    }

    async fn data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError> {
        Ok(data_key::Entity::find()
            .all(&self.db)
            .await
            .map_err(map_err)?
            .into_iter()
            .map(to_wrapped)
            .collect())
    }

    async fn replace_data_key(&self, k: &WrappedDataKey) -> Result<(), StoreError> {
        let txn = self.db.begin().await.map_err(map_err)?;
        data_key::Entity::update_many()
            .col_expr(
                data_key::Column::MasterKeyId,
                Expr::value(k.master_key_id.as_str()),
            )
            .col_expr(data_key::Column::Wrapped, Expr::value(k.wrapped.clone()))
            .filter(data_key::Column::Id.eq(k.id))
            .exec(&txn)
            .await
            .map_err(map_err)?;
        txn.commit().await.map_err(map_err)
    }

    async fn insert_oidc_login(&self, l: &PendingOidcLogin) -> Result<(), StoreError> {
        oidc_login::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            state_hash: Set(l.state_hash.clone()),
            binding_hash: Set(l.binding_hash.clone()),
            nonce: Set(l.nonce.clone()),
            created_at: Set(l.created_at),
            expires_at: Set(l.expires_at),
        }
        .insert(&self.db)
        .await
        .map_err(map_err)
        .map(|_| ())
    }

    async fn take_oidc_login(&self, state_hash: &[u8]) -> Result<Option<PendingOidcLogin>, StoreError> {
        let Some(m) = oidc_login::Entity::find()
            .filter(oidc_login::Column::StateHash.eq(state_hash.to_vec()))
            .one(&self.db)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        // Whoever deletes the row owns it: of concurrent callbacks with one state, one wins.
        let taken = oidc_login::Entity::delete_many()
            .filter(oidc_login::Column::Id.eq(m.id))
            .exec(&self.db)
            .await
            .map_err(map_err)?;
        if taken.rows_affected != 1 {
            return Ok(None);
        }
        Ok(Some(PendingOidcLogin {
            state_hash: m.state_hash,
            binding_hash: m.binding_hash,
            nonce: m.nonce,
            created_at: m.created_at,
            expires_at: m.expires_at,
        }))
    }

    async fn purge_oidc_logins(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = oidc_login::Entity::delete_many()
            .filter(oidc_login::Column::ExpiresAt.lt(before))
            .exec(&self.db)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected)
    }
}
