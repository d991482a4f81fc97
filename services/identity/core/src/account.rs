//! People's accounts (R-SEC-5, R-SEC-6): usernames, roles, status, sessions and their states.
//! Every type here is valid once built ("parse, don't validate").

use chrono::{DateTime, Utc};
use etx_domain::{FieldViolation, OrgId, UserId, ViolationCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// A value that does not satisfy its rule: the violation code and an English detail that
/// never quotes the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    /// The broken rule.
    pub code: ViolationCode,
    /// What the rule is.
    pub detail: &'static str,
}

impl Invalid {
    /// The violation at `path`.
    pub fn at(self, path: &str) -> FieldViolation {
        FieldViolation::new(path, self.code).with_detail(self.detail)
    }
}

/// A username: 3–64 characters of `a-z 0-9 . _ - @`, starting with a letter or digit. Stored
/// and compared in lower case, so usernames are unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Longest username.
    pub const MAX: usize = 64;

    /// Parses (and lower-cases) a username.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim().to_lowercase();
        if s.chars().count() < 3 {
            return Err(Invalid {
                code: ViolationCode::TooSmall,
                detail: "at least 3 characters",
            });
        }
        if s.chars().count() > Self::MAX {
            return Err(Invalid {
                code: ViolationCode::TooLarge,
                detail: "at most 64 characters",
            });
        }
        let ok_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '@');
        let starts_well = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !s.chars().all(ok_char) || !starts_well {
            return Err(Invalid {
                code: ViolationCode::Format,
                detail: "letters a-z, digits and . _ - @, starting with a letter or digit",
            });
        }
        Ok(Self(s))
    }

    /// The normalised (lower-case) username.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How a submitted (possibly invalid) username is recorded and counted for lockout: trimmed,
    /// lower-cased, each control character (NUL included, which PostgreSQL cannot store in text)
    /// replaced by U+FFFD and cut to 128 characters, so that lockout counts per submitted name
    /// whether or not an account has it.
    pub fn attempt_key(submitted: &str) -> String {
        submitted
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_control() {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .take(128)
            .collect()
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).map_err(|e| e.detail.to_owned())
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

/// A person's display name: 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a display name (trimmed).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Invalid {
                code: ViolationCode::Required,
                detail: "a display name is required",
            });
        }
        if s.chars().count() > 200 {
            return Err(Invalid {
                code: ViolationCode::TooLarge,
                detail: "at most 200 characters",
            });
        }
        if s.chars().any(char::is_control) {
            return Err(Invalid {
                code: ViolationCode::Format,
                detail: "no control characters",
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DisplayName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).map_err(|e| e.detail.to_owned())
    }
}

impl From<DisplayName> for String {
    fn from(d: DisplayName) -> String {
        d.0
    }
}

/// What a person may do (issue 4 §3). Every one of these roles either administers the hub or
/// sees data about organisations and people, so every person account must sign in with a
/// second factor (R-SEC-6): there is no role without MFA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages accounts, organisations and configuration within their organisation's subtree.
    SystemAdmin,
    /// Watches the security log, alerts and the vulnerability register.
    SecurityOfficer,
    /// Runs day-to-day operations (sources, batches, reconciliation).
    Operator,
    /// Reads aggregates and reports.
    Analyst,
    /// Reads the audit and connection log.
    Auditor,
    /// Receives shared data and exports (R-SHR).
    DataConsumer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Self::SystemAdmin,
        Self::SecurityOfficer,
        Self::Operator,
        Self::Analyst,
        Self::Auditor,
        Self::DataConsumer,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SystemAdmin => "system_admin",
            Self::SecurityOfficer => "security_officer",
            Self::Operator => "operator",
            Self::Analyst => "analyst",
            Self::Auditor => "auditor",
            Self::DataConsumer => "data_consumer",
        }
    }

    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or(Invalid {
            code: ViolationCode::Enum,
            detail: "one of system_admin, security_officer, operator, analyst, auditor, data_consumer",
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Self::parse(s)
    }
}

/// A non-empty set of roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Role>", into = "Vec<Role>")]
pub struct Roles(BTreeSet<Role>);

impl Roles {
    /// A set from roles; at least one.
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Result<Self, Invalid> {
        let set: BTreeSet<Role> = roles.into_iter().collect();
        if set.is_empty() {
            return Err(Invalid {
                code: ViolationCode::Required,
                detail: "at least one role",
            });
        }
        Ok(Self(set))
    }

    /// Parses names; every one must be a known role.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, Invalid> {
        Self::new(
            names
                .iter()
                .map(|n| Role::parse(n.as_ref()))
                .collect::<Result<Vec<_>, _>>()?,
        )
    }

    /// Whether the set holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// The roles, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }

    /// The names, in a stable order.
    pub fn names(&self) -> Vec<String> {
        self.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

impl TryFrom<Vec<Role>> for Roles {
    type Error = String;
    fn try_from(v: Vec<Role>) -> Result<Self, String> {
        Self::new(v).map_err(|e| e.detail.to_owned())
    }
}

impl From<Roles> for Vec<Role> {
    fn from(r: Roles) -> Vec<Role> {
        r.0.into_iter().collect()
    }
}

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// May sign in.
    Active,
    /// May not sign in; its sessions are ended.
    Disabled,
}

impl UserStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "active" => Ok(Self::Active),
            "disabled" => Ok(Self::Disabled),
            _ => Err(Invalid {
                code: ViolationCode::Enum,
                detail: "active or disabled",
            }),
        }
    }
}

/// A person's account, without any secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Its id.
    pub id: UserId,
    /// Unique, lower-case.
    pub username: Username,
    /// Shown in the UI and the audit log.
    pub display_name: DisplayName,
    /// The home organisation: the account acts within this organisation's subtree.
    pub org_id: OrgId,
    /// What it may do.
    pub roles: Roles,
    /// Whether it may sign in.
    pub status: UserStatus,
    /// Set by an administrator's reset: the next sign-in must change the password first.
    pub must_change_password: bool,
    /// Whether a TOTP second factor is enrolled and confirmed.
    pub mfa_enabled: bool,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

/// A session's id (not its token: the token is never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
    /// Wraps a stored id.
    pub const fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }
    /// The UUID.
    pub const fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a session may do (R-SEC-6). Only [`SessionState::Full`] reaches the API; the others
/// reach only the endpoints that move the session on (and `me`/`logout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Signed in with password and second factor.
    Full,
    /// Signed in with the password of an account that has no second factor yet: may only enrol
    /// one (`/auth/mfa/enroll`, `/auth/mfa/confirm`).
    MfaEnrolmentRequired,
    /// Signed in with a temporary password: may only change it (`/auth/password`).
    PasswordChangeRequired,
    /// Signed in through the OpenID provider by an account with a second factor: may only give
    /// it (`/auth/mfa/verify`) — the provider's sign-in is never a second factor of ours unless
    /// the configuration trusts the provider's own MFA.
    SecondFactorRequired,
}

impl SessionState {
    /// The state a session of this account starts in, or moves to after a step: a password
    /// change first, then MFA enrolment, then full.
    pub fn for_account(must_change_password: bool, mfa_enabled: bool) -> Self {
        if must_change_password {
            Self::PasswordChangeRequired
        } else if !mfa_enabled {
            Self::MfaEnrolmentRequired
        } else {
            Self::Full
        }
    }

    /// The state a session opened through the OpenID provider starts in (R-SEC-6): an account
    /// with a second factor must give it first, unless the provider's own multi-factor sign-in is
    /// trusted and was used; then as [`SessionState::for_account`].
    pub fn after_provider_sign_in(
        must_change_password: bool,
        mfa_enabled: bool,
        provider_mfa_trusted: bool,
    ) -> Self {
        if mfa_enabled && !provider_mfa_trusted {
            Self::SecondFactorRequired
        } else {
            Self::for_account(must_change_password, mfa_enabled)
        }
    }

    /// Every state.
    pub const ALL: [SessionState; 4] = [
        Self::Full,
        Self::MfaEnrolmentRequired,
        Self::PasswordChangeRequired,
        Self::SecondFactorRequired,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::MfaEnrolmentRequired => "mfa_enrolment_required",
            Self::PasswordChangeRequired => "password_change_required",
            Self::SecondFactorRequired => "second_factor_required",
        }
    }

    /// Parses a snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "etx_session";

/// The `Set-Cookie` value that hands a session token to the browser: `HttpOnly` (no script
/// reads it), `Secure` (HTTPS only), `SameSite=Strict` (never sent by another site's pages),
/// `Path=/`. No `Max-Age`: the server enforces the idle and absolute timeouts.
pub fn session_cookie(token: &str) -> String {
    format!("{SESSION_COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn expired_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
}

/// The session token in `Cookie` header values (several headers, as HTTP/2 sends them, or one
/// with `; `-separated pairs). `None` when absent or empty.
pub fn session_token_in<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    cookie_value_in(SESSION_COOKIE, cookie_headers)
}

/// The value of the cookie `name` in `Cookie` header values; `None` when absent or empty.
pub fn cookie_value_in<'a>(name: &str, cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    cookie_headers
        .into_iter()
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased_and_checked() {
        assert_eq!(
            Username::parse(" An.Admin@HCM ").map(|u| u.0),
            Ok("an.admin@hcm".into())
        );
        assert_eq!(
            Username::parse("ab").map_err(|e| e.code),
            Err(ViolationCode::TooSmall)
        );
        assert_eq!(
            Username::parse(&"a".repeat(65)).map_err(|e| e.code),
            Err(ViolationCode::TooLarge)
        );
        for bad in ["-admin", "ad min", "adm:in", "nguyễn"] {
            assert_eq!(
                Username::parse(bad).map_err(|e| e.code),
                Err(ViolationCode::Format),
                "{bad}"
            );
        }
        assert_eq!(Username::attempt_key("  ADMIN "), "admin");
        assert_eq!(Username::attempt_key("ad\u{0}m\u{1b}in"), "ad\u{fffd}m\u{fffd}in");
    }

    #[test]
    fn roles_parse_and_print_in_snake_case() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
            assert_eq!(serde_json::to_string(&r).ok(), Some(format!("\"{r}\"")));
        }
        assert!(Role::parse("root").is_err());
        assert!(Roles::parse::<&str>(&[]).is_err());
        let roles =
            Roles::parse(&["operator", "system_admin", "operator"]).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(roles.names(), vec!["system_admin", "operator"]);
        assert!(roles.has(Role::SystemAdmin) && !roles.has(Role::Auditor));
    }

    #[test]
    fn a_session_starts_with_the_password_change_then_enrolment() {
        assert_eq!(
            SessionState::for_account(true, false),
            SessionState::PasswordChangeRequired
        );
        assert_eq!(
            SessionState::for_account(true, true),
            SessionState::PasswordChangeRequired
        );
        assert_eq!(
            SessionState::for_account(false, false),
            SessionState::MfaEnrolmentRequired
        );
        assert_eq!(SessionState::for_account(false, true), SessionState::Full);
        for s in SessionState::ALL {
            assert_eq!(SessionState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_provider_sign_in_needs_our_second_factor_unless_the_providers_is_trusted() {
        use SessionState::*;
        let after = SessionState::after_provider_sign_in;
        assert_eq!(after(false, true, false), SecondFactorRequired);
        assert_eq!(after(true, true, false), SecondFactorRequired);
        assert_eq!(after(false, true, true), Full);
        assert_eq!(after(true, true, true), PasswordChangeRequired);
        assert_eq!(after(false, false, false), MfaEnrolmentRequired);
        assert_eq!(after(false, false, true), MfaEnrolmentRequired);
    }

    #[test]
    fn the_session_cookie_is_http_only_secure_and_strict_and_is_found_among_others() {
        let c = session_cookie("tok");
        for attr in [
            "etx_session=tok",
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
        ] {
            assert!(c.contains(attr), "{c}");
        }
        assert_eq!(session_token_in(["a=1; etx_session=abc; b=2"]), Some("abc"));
        assert_eq!(session_token_in(["a=1", "etx_session=xyz"]), Some("xyz"));
        assert_eq!(session_token_in(["etx_session="]), None);
        assert_eq!(session_token_in(["etx_sessionx=1"]), None);
        assert_eq!(session_token_in(std::iter::empty()), None);
    }
}
