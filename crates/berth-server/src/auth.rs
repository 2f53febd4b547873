//! Local users and tokens, kept where Argo CD keeps them so an existing
//! installation's users keep working:
//!
//! - `argocd-secret` holds the token signing key (`server.secretkey`), the
//!   admin's password hash (`admin.password`) and other accounts' hashes
//!   (`accounts.NAME.password`); created when missing. Argo CD's bcrypt
//!   hashes are read; passwords Berth sets are hashed with argon2id (PHC
//!   string), and each change records `...passwordMtime`: sessions issued
//!   before it are no longer honoured (API tokens are, until revoked).
//! - `argocd-initial-admin-secret` holds the admin's first password, random,
//!   written once at install as Argo CD does.
//! - `argocd-cm` enables accounts: `admin.enabled` (default true) and
//!   `accounts.NAME: login` (or `apiKey, login`).
//!
//! Tokens are JWTs signed with HS256 (issuer `argocd`, subject the user),
//! valid 24 h for a login. Failed logins are limited per user: after 5 in
//! 5 minutes, logins for that user are refused until the window passes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Argo CD's server Secret.
pub const SERVER_SECRET: &str = "argocd-secret";
/// Argo CD's Secret with the admin's first password.
pub const INITIAL_ADMIN_SECRET: &str = "argocd-initial-admin-secret";
/// How long a login's token is valid (Argo CD's `users.session.duration`).
pub const SESSION: Duration = Duration::from_secs(24 * 3600);
/// Failed logins allowed per user within [`LOGIN_WINDOW`].
pub const MAX_FAILED_LOGINS: u32 = 5;
/// The window of [`MAX_FAILED_LOGINS`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(300);

/// Why authentication could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Reading or writing a Secret failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// Why.
        source: Box<kube::Error>,
    },
    /// The system's random source could not be read.
    #[error("reading random bytes: {0}")]
    Random(#[from] std::io::Error),
    /// Hashing the admin's password failed.
    #[error("hashing a password: {0}")]
    Hash(String),
    /// The signing key cannot be used.
    #[error("the token signing key (server.secretkey): {0}")]
    Key(jsonwebtoken::errors::Error),
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> AuthError {
    let what = what.into();
    move |e| AuthError::Kube {
        what,
        source: Box::new(e),
    }
}

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, std::io::Error> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// A random password of letters and digits.
pub fn random_password(len: usize) -> Result<String, std::io::Error> {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    Ok(random_bytes(len)?
        .into_iter()
        .map(|b| CHARS[b as usize % CHARS.len()] as char)
        .collect())
}

/// A token's claims, as Argo CD writes them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// `argocd`.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expires at (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// The token's id.
    pub jti: String,
    /// Groups (from an identity provider); none for local users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// One API token of an account, as Argo CD records it in
/// `argocd-secret` (`accounts.NAME.tokens`, a JSON list).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token's id (its `jti`).
    pub id: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at; 0 for never.
    #[serde(default)]
    pub exp: u64,
}

/// The subject suffix of API tokens, as Argo CD writes it.
pub const API_KEY_SUFFIX: &str = ":apiKey";

/// Signs and checks tokens; checks passwords.
pub struct Auth {
    client: Client,
    namespace: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    /// Live API tokens by account, from `argocd-secret`: a token not listed
    /// here has been revoked.
    tokens: RwLock<HashMap<String, Vec<TokenRecord>>>,
    /// When each account's password last changed (seconds since the
    /// epoch), from `argocd-secret`: older sessions are refused.
    mtimes: RwLock<HashMap<String, u64>>,
}

/// When each account's password last changed, from `argocd-secret`'s data
/// (`admin.passwordMtime`, `accounts.NAME.passwordMtime`).
pub fn password_mtimes(data: &BTreeMap<String, ByteString>) -> HashMap<String, u64> {
    data.iter()
        .filter_map(|(k, v)| {
            let account = if k == "admin.passwordMtime" {
                "admin"
            } else {
                k.strip_prefix("accounts.")?
                    .strip_suffix(".passwordMtime")?
            };
            let text = String::from_utf8_lossy(&v.0);
            let at: jiff::Timestamp = text.trim().parse().ok()?;
            Some((account.to_string(), u64::try_from(at.as_second()).ok()?))
        })
        .collect()
}

/// An argon2id hash of `password` in PHC form (`$argon2id$v=19$...`).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = random_bytes(16).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `hash`: argon2 (PHC) or bcrypt (Argo CD's).
pub fn password_matches_hash(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    if hash.starts_with("$argon2") {
        PasswordHash::new(hash)
            .and_then(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h))
            .is_ok()
    } else {
        bcrypt::verify(password, hash).unwrap_or(false)
    }
}

/// The API tokens recorded in `argocd-secret`'s data.
pub fn tokens_from(data: &BTreeMap<String, ByteString>) -> HashMap<String, Vec<TokenRecord>> {
    data.iter()
        .filter_map(|(k, v)| {
            let account = k.strip_prefix("accounts.")?.strip_suffix(".tokens")?;
            let list: Vec<TokenRecord> = serde_json::from_slice(&v.0).ok()?;
            Some((account.to_string(), list))
        })
        .collect()
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("namespace", &self.namespace)
            .finish()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Auth {
    /// Reads (creating when missing) the signing key and the admin account
    /// in `namespace`.
    pub async fn setup(client: &Client, namespace: &str) -> Result<Auth, AuthError> {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let existing = secrets
            .get_opt(SERVER_SECRET)
            .await
            .map_err(kube_err(format!(
                "reading Secret {namespace}/{SERVER_SECRET}"
            )))?;
        let data = existing
            .as_ref()
            .and_then(|s| s.data.clone())
            .unwrap_or_default();
        let mut add: BTreeMap<String, ByteString> = BTreeMap::new();
        let key = match data.get("server.secretkey") {
            Some(k) if !k.0.is_empty() => k.0.clone(),
            _ => {
                let k = base64::engine::general_purpose::STANDARD
                    .encode(random_bytes(32)?)
                    .into_bytes();
                add.insert("server.secretkey".into(), ByteString(k.clone()));
                k
            }
        };
        let mut initial_password = None;
        if !data.contains_key("admin.password") {
            let password = random_password(16)?;
            let hash = hash_password(&password).map_err(AuthError::Hash)?;
            add.insert("admin.password".into(), ByteString(hash.into_bytes()));
            add.insert(
                "admin.passwordMtime".into(),
                ByteString(berth_api::time::rfc3339(SystemTime::now()).into_bytes()),
            );
            initial_password = Some(password);
        }
        if !add.is_empty() {
            let patch = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": SERVER_SECRET, "namespace": namespace,
                    "labels": {"app.kubernetes.io/name": SERVER_SECRET, "app.kubernetes.io/part-of": "argocd"}},
                "data": add,
            });
            secrets
                .patch(
                    SERVER_SECRET,
                    &PatchParams::apply("berth-server"),
                    &Patch::Apply(&patch),
                )
                .await
                .map_err(kube_err(format!(
                    "writing Secret {namespace}/{SERVER_SECRET}"
                )))?;
        }
        if let Some(password) = initial_password {
            let secret: Secret = serde_json::from_value(serde_json::json!({
                "metadata": {"name": INITIAL_ADMIN_SECRET, "namespace": namespace},
                "type": "Opaque",
                "data": {"password": base64::engine::general_purpose::STANDARD.encode(password)},
            }))
            .map_err(|e| AuthError::Random(std::io::Error::other(e)))?;
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => {}
                // A password from an earlier install stays (it was the
                // hash that was missing, not this).
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    secrets
                        .replace(INITIAL_ADMIN_SECRET, &PostParams::default(), &secret)
                        .await
                        .map_err(kube_err(format!(
                            "writing Secret {namespace}/{INITIAL_ADMIN_SECRET}"
                        )))?;
                }
                Err(e) => {
                    return Err(kube_err(format!(
                        "writing Secret {namespace}/{INITIAL_ADMIN_SECRET}"
                    ))(e));
                }
            }
        }
        Ok(Auth {
            client: client.clone(),
            namespace: namespace.to_string(),
            encoding: EncodingKey::from_secret(&key).map_err(AuthError::Key)?,
            decoding: DecodingKey::from_secret(&key).map_err(AuthError::Key)?,
            failures: Mutex::new(HashMap::new()),
            mtimes: RwLock::new(password_mtimes(&data)),
            tokens: RwLock::new(tokens_from(&data)),
        })
    }

    /// A token for `user`, valid for `valid_for` (none: no expiry).
    pub fn issue(&self, user: &str, valid_for: Option<Duration>) -> Result<String, ApiError> {
        self.issue_with_groups(user, Vec::new(), valid_for)
    }

    /// A session for a user who logged in through SSO, with the groups
    /// (and other claims) RBAC matches.
    pub fn issue_session(&self, user: &str, groups: Vec<String>) -> Result<String, ApiError> {
        self.issue_with_groups(user, groups, Some(SESSION))
    }

    fn issue_with_groups(
        &self,
        user: &str,
        groups: Vec<String>,
        valid_for: Option<Duration>,
    ) -> Result<String, ApiError> {
        let iat = now();
        let jti = random_bytes(16)
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
            .map_err(|e| ApiError::internal(format!("token id: {e}")))?;
        self.sign(&Claims {
            iss: "argocd".into(),
            sub: user.to_string(),
            iat,
            nbf: iat,
            exp: valid_for.map(|d| iat + d.as_secs()),
            jti,
            groups,
        })
    }

    /// Signs `claims` (for project role tokens, whose subject and id the
    /// caller chose).
    pub fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))
    }

    /// Replaces the known API tokens (the server Secret changed).
    pub fn set_tokens(&self, tokens: HashMap<String, Vec<TokenRecord>>) {
        if let Ok(mut t) = self.tokens.write() {
            *t = tokens;
        }
    }

    /// Replaces the known password change times (the server Secret
    /// changed).
    pub fn set_password_mtimes(&self, mtimes: HashMap<String, u64>) {
        if let Ok(mut m) = self.mtimes.write() {
            *m = mtimes;
        }
    }

    /// An account's API tokens.
    pub fn tokens_of(&self, account: &str) -> Vec<TokenRecord> {
        self.tokens
            .read()
            .ok()
            .and_then(|t| t.get(account).cloned())
            .unwrap_or_default()
    }

    /// The user a valid token speaks for: a session's subject, or the
    /// account of an API token that is still listed (not revoked).
    pub fn verify_user(&self, token: &str) -> Result<Claims, ApiError> {
        let mut claims = self.verify(token)?;
        if let Some(account) = claims.sub.strip_suffix(API_KEY_SUFFIX) {
            let account = account.to_string();
            if !self.tokens_of(&account).iter().any(|t| t.id == claims.jti) {
                return Err(ApiError::unauthenticated(format!(
                    "the API token {} of account {account:?} has been revoked",
                    claims.jti
                )));
            }
            claims.sub = account;
            return Ok(claims);
        }
        let changed = self
            .mtimes
            .read()
            .ok()
            .and_then(|m| m.get(&claims.sub).copied());
        if changed.is_some_and(|at| claims.iat < at) {
            return Err(ApiError::unauthenticated(
                "the password changed after this session began: log in again",
            ));
        }
        Ok(claims)
    }

    /// Issues an API token for `account` and records it in `argocd-secret`
    /// (so it can be listed and revoked). `id` empty: a random one.
    pub async fn issue_api_token(
        &self,
        account: &str,
        id: &str,
        expires_in: Option<Duration>,
    ) -> Result<(String, TokenRecord), ApiError> {
        let iat = now();
        let id = if id.is_empty() {
            random_bytes(8)
                .map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
                .map_err(|e| ApiError::internal(format!("token id: {e}")))?
        } else {
            id.to_string()
        };
        if self.tokens_of(account).iter().any(|t| t.id == id) {
            return Err(ApiError::conflict(format!(
                "account {account:?} already has a token with id {id:?}"
            )));
        }
        let record = TokenRecord {
            id: id.clone(),
            iat,
            exp: expires_in.map(|d| iat + d.as_secs()).unwrap_or(0),
        };
        let claims = Claims {
            iss: "argocd".into(),
            sub: format!("{account}{API_KEY_SUFFIX}"),
            iat,
            nbf: iat,
            exp: expires_in.map(|d| iat + d.as_secs()),
            jti: id,
            groups: Vec::new(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))?;
        let mut list = self.tokens_of(account);
        list.push(record.clone());
        self.write_tokens(account, list).await?;
        Ok((token, record))
    }

    /// Revokes an account's API token.
    pub async fn revoke(&self, account: &str, id: &str) -> Result<(), ApiError> {
        let mut list = self.tokens_of(account);
        let before = list.len();
        list.retain(|t| t.id != id);
        if list.len() == before {
            return Err(ApiError::not_found(format!(
                "account {account:?} has no token {id:?}"
            )));
        }
        self.write_tokens(account, list).await
    }

    async fn write_tokens(&self, account: &str, list: Vec<TokenRecord>) -> Result<(), ApiError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let encoded =
            serde_json::to_string(&list).map_err(|e| ApiError::internal(format!("tokens: {e}")))?;
        let patch =
            serde_json::json!({"stringData": {format!("accounts.{account}.tokens"): encoded}});
        secrets
            .patch(
                SERVER_SECRET,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| ApiError::kube("writing the server Secret", e))?;
        if let Ok(mut t) = self.tokens.write() {
            t.insert(account.to_string(), list);
        }
        Ok(())
    }

    /// Sets `user`'s password (argon2id; Argo CD's bcrypt hashes are still
    /// read) and records when, which ends `user`'s earlier sessions.
    pub async fn set_password(&self, user: &str, password: &str) -> Result<(), ApiError> {
        if password.chars().count() < 8 {
            return Err(ApiError::bad_request("newPassword: at least 8 characters"));
        }
        let owned = password.to_string();
        let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
            .await
            .map_err(|e| ApiError::internal(format!("hashing: {e}")))?
            .map_err(|e| ApiError::internal(format!("hashing: {e}")))?;
        let key = if user == "admin" {
            "admin.password".to_string()
        } else {
            format!("accounts.{user}.password")
        };
        let mtime_key = format!("{}Mtime", key);
        let patch = serde_json::json!({"stringData": {
            key: hash,
            mtime_key: berth_api::time::rfc3339(SystemTime::now()),
        }});
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        secrets
            .patch(
                SERVER_SECRET,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| ApiError::kube("writing the server Secret", e))?;
        // At once here; other replicas learn it from the Secret's watch.
        if let Ok(mut m) = self.mtimes.write() {
            m.insert(user.to_string(), now());
        }
        Ok(())
    }

    /// Whether `password` is `user`'s (without the login limit).
    pub async fn password_matches(&self, user: &str, password: &str) -> Result<bool, ApiError> {
        self.check_password(user, password).await
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["argocd"]);
        validation.required_spec_claims = ["iss", "sub"].into_iter().map(String::from).collect();
        validation.validate_nbf = true;
        // Expiry is exact: a token is not honoured past its `exp`.
        validation.leeway = 0;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthenticated("the token has expired: log in again")
                }
                _ => ApiError::unauthenticated("invalid token: log in again"),
            })
    }

    /// Checks a user's password; returns a session token.
    pub async fn login(&self, user: &str, password: &str) -> Result<String, ApiError> {
        {
            let mut failures = self
                .failures
                .lock()
                .map_err(|_| ApiError::internal("login state"))?;
            if let Some((count, since)) = failures.get(user).copied() {
                if since.elapsed() > LOGIN_WINDOW {
                    failures.remove(user);
                } else if count >= MAX_FAILED_LOGINS {
                    return Err(ApiError::too_many(format!(
                        "too many failed logins for {user:?}: try again in {} s",
                        LOGIN_WINDOW.saturating_sub(since.elapsed()).as_secs()
                    )));
                }
            }
        }
        let ok = self.check_password(user, password).await?;
        if !ok {
            if let Ok(mut failures) = self.failures.lock() {
                let entry = failures
                    .entry(user.to_string())
                    .or_insert((0, Instant::now()));
                entry.0 += 1;
            }
            // The same answer for an unknown user and a wrong password.
            return Err(ApiError::unauthenticated("Invalid username or password"));
        }
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(user);
        }
        self.issue(user, Some(SESSION))
    }

    async fn check_password(&self, user: &str, password: &str) -> Result<bool, ApiError> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let cm = maps
            .get_opt("argocd-cm")
            .await
            .map_err(|e| ApiError::kube("reading argocd-cm", e))?
            .and_then(|c| c.data)
            .unwrap_or_default();
        let (enabled, hash_key) = if user == "admin" {
            (
                cm.get("admin.enabled").map(|v| v.trim()) != Some("false"),
                "admin.password".to_string(),
            )
        } else {
            let capabilities = cm
                .get(&format!("accounts.{user}"))
                .cloned()
                .unwrap_or_default();
            let enabled = cm
                .get(&format!("accounts.{user}.enabled"))
                .map(|v| v.trim())
                != Some("false");
            (
                enabled && capabilities.split(',').any(|c| c.trim() == "login"),
                format!("accounts.{user}.password"),
            )
        };
        if !enabled {
            return Ok(false);
        }
        let hash = secrets
            .get_opt(SERVER_SECRET)
            .await
            .map_err(|e| ApiError::kube("reading the server Secret", e))?
            .and_then(|s| s.data)
            .and_then(|d| d.get(&hash_key).cloned());
        let Some(hash) = hash else {
            return Ok(false);
        };
        let hash = String::from_utf8_lossy(&hash.0).to_string();
        let password = password.to_string();
        // Password hashes are slow on purpose: off the async threads.
        tokio::task::spawn_blocking(move || password_matches_hash(&password, &hash))
            .await
            .map_err(|e| ApiError::internal(format!("checking a password: {e}")))
    }
}
