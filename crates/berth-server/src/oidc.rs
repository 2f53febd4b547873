//! Single sign-on with an OpenID Connect provider, configured as in Argo
//! CD: `oidc.config` in `argocd-cm` (`name`, `issuer`, `clientID`,
//! `clientSecret` — `$key` reads `argocd-secret`, `$secret:key` another
//! Secret of the control namespace — and `requestedScopes`), the server's
//! external address in `url`.
//!
//! The flow is the authorization code flow with PKCE (S256): `GET
//! /auth/login?return_url=...` redirects to the provider with a fresh
//! verifier, state and nonce; `GET /auth/callback` exchanges the code
//! (with the verifier), checks the ID token (signature from the provider's
//! JWKS, issuer, audience, expiry, nonce), and issues a Berth session for
//! the token's subject, carrying as groups the claims that
//! `argocd-rbac-cm`'s `scopes` names (default `[groups]`). A browser gets
//! it as Argo CD's HTTP-only `argocd.token` cookie; the CLI (`berth login
//! --sso`) passes a loopback `return_url` and gets it there.
//!
//! Login state lives in this server's memory for ten minutes: a login
//! begun on one replica must end on the same one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::apps::query_pairs;
use crate::error::ApiError;

/// How long a login may take between the redirect and the callback.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);

/// `oidc.config`, with its secret resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfig {
    /// Shown on the login button.
    pub name: String,
    /// The provider's issuer URL.
    pub issuer: String,
    /// This server's client id there.
    pub client_id: String,
    /// Its secret, if the provider wants one.
    pub client_secret: Option<String>,
    /// Scopes asked for (`openid` always).
    pub scopes: Vec<String>,
}

/// The checked claims of an ID token.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `sub`.
    pub subject: String,
    /// `email`, if given.
    pub email: Option<String>,
    /// Every claim, for group mapping.
    pub claims: Value,
}

/// A login under way.
struct Pending {
    verifier: String,
    nonce: String,
    redirect_uri: String,
    return_url: String,
    at: Instant,
}

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone)]
struct Provider {
    authorization: String,
    token: String,
    jwks: JwkSet,
    fetched: Instant,
}

/// SSO state: logins under way and the provider's discovered endpoints.
#[derive(Default)]
pub struct Oidc {
    pending: Mutex<HashMap<String, Pending>>,
    provider: Mutex<Option<(String, Provider)>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc").finish_non_exhaustive()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_text(n: usize) -> Result<String, ApiError> {
    crate::auth::random_bytes(n)
        .map(|b| b64url(&b))
        .map_err(|e| ApiError::internal(format!("random source: {e}")))
}

/// The PKCE S256 challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    b64url(&Sha256::digest(verifier.as_bytes()))
}

/// Reads `oidc.config` (and `url`) from `argocd-cm`; `None` when SSO is
/// not configured.
pub async fn config(
    client: &Client,
    namespace: &str,
) -> Result<Option<(OidcConfig, Option<String>)>, ApiError> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let data = maps
        .get_opt("argocd-cm")
        .await
        .map_err(|e| ApiError::kube("reading argocd-cm", e))?
        .and_then(|c| c.data)
        .unwrap_or_default();
    let url = data.get("url").map(|u| u.trim_end_matches('/').to_string());
    let Some(text) = data.get("oidc.config").filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    let raw: Value = serde_saphyr::from_str(text)
        .map_err(|e| ApiError::internal(format!("argocd-cm oidc.config: not YAML: {e}")))?;
    let field = |k: &str| {
        raw.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (issuer, client_id) = (field("issuer"), field("clientID"));
    if issuer.is_empty() || client_id.is_empty() {
        return Err(ApiError::internal(
            "argocd-cm oidc.config: issuer and clientID are required",
        ));
    }
    let secret = match field("clientSecret") {
        s if s.is_empty() => None,
        s => Some(resolve_secret(client, namespace, &s).await?),
    };
    let mut scopes: Vec<String> = raw
        .get("requestedScopes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_else(|| {
            vec![
                "openid".into(),
                "profile".into(),
                "email".into(),
                "groups".into(),
            ]
        });
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    Ok(Some((
        OidcConfig {
            name: field("name"),
            issuer: issuer.trim_end_matches('/').to_string(),
            client_id,
            client_secret: secret,
            scopes,
        },
        url,
    )))
}

/// Argo CD's secret references: `$key` is a key of `argocd-secret`,
/// `$name:key` a key of Secret `name` (which Argo CD wants labelled
/// `app.kubernetes.io/part-of: argocd`); anything else is the value.
async fn resolve_secret(client: &Client, namespace: &str, value: &str) -> Result<String, ApiError> {
    let Some(reference) = value.strip_prefix('$') else {
        return Ok(value.to_string());
    };
    let (name, key) = reference
        .split_once(':')
        .unwrap_or((crate::auth::SERVER_SECRET, reference));
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| ApiError::kube(&format!("reading Secret {name}"), e))?
        .ok_or_else(|| {
            ApiError::internal(format!(
                "argocd-cm oidc.config clientSecret {value:?}: Secret {name} does not exist"
            ))
        })?;
    let bytes = secret
        .data
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(|| {
            ApiError::internal(format!(
                "argocd-cm oidc.config clientSecret {value:?}: Secret {name} has no key {key}"
            ))
        })?;
    Ok(String::from_utf8_lossy(&bytes.0).trim().to_string())
}

impl Oidc {
    /// The provider's endpoints and keys, discovered once and again after
    /// ten minutes (or when a token names a key not known yet).
    async fn provider(&self, issuer: &str, refresh: bool) -> Result<Provider, ApiError> {
        if !refresh
            && let Ok(p) = self.provider.lock()
            && let Some((i, p)) = p.as_ref()
            && i == issuer
            && p.fetched.elapsed() < LOGIN_TTL
        {
            return Ok(p.clone());
        }
        let fail = |what: &str, e: String| {
            ApiError::unavailable(format!("the identity provider {issuer}: {what}: {e}"))
        };
        let discovery: Value = self
            .http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| fail("discovery", e.to_string()))?
            .json()
            .await
            .map_err(|e| fail("discovery", e.to_string()))?;
        let text = |k: &str| {
            discovery
                .get(k)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| fail("discovery", format!("no {k}")))
        };
        let jwks: JwkSet = self
            .http
            .get(text("jwks_uri")?)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| fail("keys", e.to_string()))?
            .json()
            .await
            .map_err(|e| fail("keys", e.to_string()))?;
        let provider = Provider {
            authorization: text("authorization_endpoint")?,
            token: text("token_endpoint")?,
            jwks,
            fetched: Instant::now(),
        };
        if let Ok(mut p) = self.provider.lock() {
            *p = Some((issuer.to_string(), provider.clone()));
        }
        Ok(provider)
    }

    /// Checks an ID token: signed by one of the provider's keys, for this
    /// client, from this issuer, not expired, with the login's nonce.
    pub async fn verify_id_token(
        &self,
        config: &OidcConfig,
        token: &str,
        nonce: &str,
    ) -> Result<Identity, ApiError> {
        let bad =
            |why: String| ApiError::unauthenticated(format!("the ID token was refused: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(e.to_string()))?;
        let kid = header.kid.clone().unwrap_or_default();
        let mut provider = self.provider(&config.issuer, false).await?;
        if !kid.is_empty() && provider.jwks.find(&kid).is_none() {
            provider = self.provider(&config.issuer, true).await?;
        }
        let jwk = if kid.is_empty() {
            provider.jwks.keys.first()
        } else {
            provider.jwks.find(&kid)
        }
        .ok_or_else(|| bad(format!("no key {kid:?} in the provider's JWKS")))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[config.client_id.as_str()]);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .into_iter()
            .map(String::from)
            .collect();
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| bad(e.to_string()))?;
        let claims = data.claims;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(bad("the nonce is not this login's".into()));
        }
        Ok(Identity {
            subject: claims["sub"].as_str().unwrap_or_default().to_string(),
            email: claims
                .get("email")
                .and_then(Value::as_str)
                .map(String::from),
            claims,
        })
    }
}

/// Where the provider sends the browser back: `url` from `argocd-cm`, or
/// the address this request came to.
fn callback_uri(url: Option<&str>, headers: &HeaderMap) -> String {
    let base = match url {
        Some(u) => u.to_string(),
        None => format!(
            "http://{}",
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1")
        ),
    };
    format!("{base}/auth/callback")
}

/// A `return_url` this server will send a session to: a path of its own,
/// or a loopback address (the CLI's listener); anything else would hand
/// sessions to another site.
pub fn allowed_return(url: &str) -> bool {
    if url.starts_with('/') && !url.starts_with("//") && !url.contains('\\') {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

/// `GET /auth/login?return_url=...`: to the provider, with PKCE.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let Some((config, url)) = config(&state.client, &state.namespace).await? else {
        return Err(ApiError::bad_request(
            "single sign-on is not configured: set oidc.config in argocd-cm",
        ));
    };
    let return_url = query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "return_url")
        .map(|(_, v)| v)
        .unwrap_or_else(|| "/".into());
    if !allowed_return(&return_url) {
        return Err(ApiError::bad_request(format!(
            "return_url {return_url:?}: use a path of this server or a loopback address"
        )));
    }
    let provider = state.oidc.provider(&config.issuer, false).await?;
    let (verifier, nonce, login_state) = (random_text(32)?, random_text(16)?, random_text(16)?);
    let redirect_uri = callback_uri(url.as_deref(), &headers);
    let mut target = reqwest::Url::parse(&provider.authorization).map_err(|e| {
        ApiError::unavailable(format!("the provider's authorization endpoint: {e}"))
    })?;
    target
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &config.client_id)
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &config.scopes.join(" "))
        .append_pair("state", &login_state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    if let Ok(mut pending) = state.oidc.pending.lock() {
        pending.retain(|_, p| p.at.elapsed() < LOGIN_TTL);
        pending.insert(
            login_state,
            Pending {
                verifier,
                nonce,
                redirect_uri,
                return_url,
                at: Instant::now(),
            },
        );
    }
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, target.to_string())],
    )
        .into_response())
}

/// `GET /auth/callback?code=...&state=...`: the provider's answer.
pub async fn callback(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = query_pairs(raw.as_deref());
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
    if let Some(error) = get("error") {
        return Err(ApiError::unauthenticated(format!(
            "the identity provider refused the login: {error}: {}",
            get("error_description").unwrap_or_default()
        )));
    }
    let (Some(code), Some(login_state)) = (get("code"), get("state")) else {
        return Err(ApiError::bad_request("code and state: required"));
    };
    // Taken out: a state serves one callback.
    let pending = state
        .oidc
        .pending
        .lock()
        .ok()
        .and_then(|mut p| p.remove(&login_state))
        .filter(|p| p.at.elapsed() < LOGIN_TTL)
        .ok_or_else(|| {
            ApiError::bad_request("this login is unknown or expired: start again at /auth/login")
        })?;
    let Some((config, url)) = config(&state.client, &state.namespace).await? else {
        return Err(ApiError::bad_request("single sign-on is not configured"));
    };
    let provider = state.oidc.provider(&config.issuer, false).await?;
    let mut form = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code),
        ("redirect_uri", pending.redirect_uri.clone()),
        ("client_id", config.client_id.clone()),
        ("code_verifier", pending.verifier.clone()),
    ];
    if let Some(s) = &config.client_secret {
        form.push(("client_secret", s.clone()));
    }
    // `application/x-www-form-urlencoded`, encoded as a URL query is.
    let encoded = reqwest::Url::parse_with_params("http://form.invalid/", &form)
        .map_err(|e| ApiError::internal(format!("encoding the token request: {e}")))?
        .query()
        .unwrap_or_default()
        .to_string();
    let response = state
        .oidc
        .http
        .post(&provider.token)
        .header(
            header::CONTENT_TYPE.as_str(),
            "application/x-www-form-urlencoded",
        )
        .body(encoded)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| {
            ApiError::unavailable(format!("the identity provider's token endpoint: {e}"))
        })?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(ApiError::unauthenticated(format!(
            "the identity provider refused the code ({status}): {}",
            body.get("error_description")
                .or_else(|| body.get("error"))
                .and_then(Value::as_str)
                .unwrap_or_default()
        )));
    }
    let id_token = body
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::unauthenticated("the identity provider sent no ID token"))?;
    let identity = state
        .oidc
        .verify_id_token(&config, id_token, &pending.nonce)
        .await?;
    let groups = state.policy().subjects_from_claims(&identity.claims);
    let token = state
        .auth
        .issue_session(&identity.subject, groups.clone())?;
    tracing::info!(user = %identity.subject, email = ?identity.email, groups = groups.len(), "single sign-on login");
    let return_url = pending.return_url;
    if return_url.starts_with("http://") {
        // The CLI's loopback listener.
        let sep = if return_url.contains('?') { '&' } else { '?' };
        let target = format!("{return_url}{sep}token={token}");
        return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, target)]).into_response());
    }
    let secure = if url.as_deref().is_some_and(|u| u.starts_with("https://")) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "argocd.token={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        crate::auth::SESSION.as_secs()
    );
    Ok((
        StatusCode::SEE_OTHER,
        [(header::LOCATION, return_url), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

/// `GET /api/v1/settings`: what a client needs before logging in (Argo
/// CD's `Settings`: the server's URL and its SSO provider).
pub async fn settings(State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let configured = config(&state.client, &state.namespace).await;
    let mut out = json!({"appLabelKey": "app.kubernetes.io/instance"});
    match configured {
        Ok(Some((c, url))) => {
            out["url"] = json!(url);
            out["oidcConfig"] = json!({"name": c.name, "issuer": c.issuer, "clientID": c.client_id, "scopes": c.scopes});
        }
        Ok(None) => {}
        Err(e) => out["oidcConfigError"] = json!(e.message),
    }
    Ok(axum::Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn return_urls_stay_here_or_on_loopback() {
        assert!(allowed_return("/applications?x=1"));
        assert!(allowed_return("http://127.0.0.1:8085/callback"));
        assert!(allowed_return("http://localhost:9000/"));
        assert!(!allowed_return("//evil.example/"));
        assert!(!allowed_return("https://evil.example/"));
        assert!(!allowed_return("http://127.0.0.1.evil.example/"));
        assert!(!allowed_return("/\\evil.example"));
    }
}
