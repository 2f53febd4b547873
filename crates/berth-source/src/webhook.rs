//! Push webhooks from Git providers: verifying that a delivery really comes
//! from the provider, and reading which repository, ref and paths changed.
//!
//! Supported: GitHub, GitLab, Gitea / Forgejo / Gogs, and Bitbucket Cloud.
//! The HTTP endpoint belongs to the server; this module takes the request's
//! headers and body and returns a [`PushEvent`] or says why not.
//!
//! As in Argo CD, a provider with no secret configured accepts unsigned
//! deliveries; once a secret is set, a missing or wrong signature is refused.
//! [`WebhookConfig::require_secrets`] refuses deliveries from providers that
//! have no secret.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::creds::SecretString;

/// Why a webhook delivery was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No header says which provider sent it.
    #[error(
        "unknown webhook: no X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event, X-Forgejo-Event, X-Gogs-Event or X-Event-Key header"
    )]
    UnknownProvider,
    /// A signature or token was required and is missing.
    #[error(
        "{provider} webhook refused: the {header} header is missing, but a webhook secret is configured"
    )]
    MissingSignature {
        /// The provider.
        provider: Provider,
        /// The header that should carry it.
        header: &'static str,
    },
    /// The signature or token does not match the configured secret.
    #[error("{provider} webhook refused: the {header} header does not match the configured secret")]
    BadSignature {
        /// The provider.
        provider: Provider,
        /// The header checked.
        header: &'static str,
    },
    /// Secrets are required and none is configured for this provider.
    #[error(
        "{provider} webhook refused: no secret is configured for {provider} and secrets are required"
    )]
    NoSecretConfigured {
        /// The provider.
        provider: Provider,
    },
    /// The body is not the JSON the provider sends.
    #[error("{provider} webhook: the body is not valid: {reason}")]
    BadPayload {
        /// The provider.
        provider: Provider,
        /// What is wrong.
        reason: String,
    },
}

/// A Git hosting provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// GitHub and GitHub Enterprise.
    GitHub,
    /// GitLab.
    GitLab,
    /// Gitea, Forgejo and Gogs (one payload format).
    Gitea,
    /// Bitbucket Cloud.
    Bitbucket,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provider::GitHub => "GitHub",
            Provider::GitLab => "GitLab",
            Provider::Gitea => "Gitea",
            Provider::Bitbucket => "Bitbucket",
        })
    }
}

/// The webhook secrets (Argo CD keeps them in `argocd-secret` as
/// `webhook.github.secret`, `webhook.gitlab.secret`, `webhook.gogs.secret`
/// and `webhook.bitbucket.uuid`).
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    /// GitHub: HMAC-SHA256 key for `X-Hub-Signature-256`.
    pub github_secret: Option<SecretString>,
    /// GitLab: the token sent in `X-Gitlab-Token`.
    pub gitlab_secret: Option<SecretString>,
    /// Gitea/Forgejo/Gogs: HMAC-SHA256 key for `X-Gitea-Signature` (or the
    /// Forgejo and Gogs headers).
    pub gitea_secret: Option<SecretString>,
    /// Bitbucket Cloud: HMAC-SHA256 key for `X-Hub-Signature`.
    pub bitbucket_secret: Option<SecretString>,
    /// Bitbucket Cloud: the webhook UUID expected in `X-Hook-UUID`.
    pub bitbucket_uuid: Option<String>,
    /// Refuse deliveries from a provider that has no secret configured.
    pub require_secrets: bool,
}

/// What a push changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// Who sent it.
    pub provider: Provider,
    /// Every URL the payload gives for the repository (web, HTTPS clone,
    /// SSH clone), to match against applications' `repoURL`.
    pub repo_urls: Vec<String>,
    /// The full ref pushed, such as `refs/heads/main` or `refs/tags/v1.0.0`.
    pub ref_name: String,
    /// The commit the ref now points to, when the payload says.
    pub after: Option<String>,
    /// Paths added, modified or removed; `None` when the payload does not
    /// list them all (so every application of the repository is refreshed).
    pub changed_paths: Option<Vec<String>>,
}

/// One header lookup, case-insensitive, as HTTP headers are.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// Verifies and parses one delivery. `Ok(None)` means a valid delivery that
/// is not a push (a ping, an issue comment...).
pub fn parse(
    headers: &[(String, String)],
    body: &[u8],
    config: &WebhookConfig,
) -> Result<Option<PushEvent>, Error> {
    if let Some(event) = header(headers, "X-GitHub-Event") {
        verify_hmac(
            Provider::GitHub,
            headers,
            body,
            &config.github_secret,
            &["X-Hub-Signature-256"],
            Some("sha256="),
            config.require_secrets,
        )?;
        return if event == "push" {
            github_like(Provider::GitHub, body).map(Some)
        } else {
            Ok(None)
        };
    }
    if let Some(event) = header(headers, "X-Gitlab-Event") {
        verify_token(headers, &config.gitlab_secret, config.require_secrets)?;
        return if event == "Push Hook" || event == "Tag Push Hook" {
            gitlab(body).map(Some)
        } else {
            Ok(None)
        };
    }
    let gitea_event = ["X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event"]
        .iter()
        .find_map(|h| header(headers, h));
    if let Some(event) = gitea_event {
        verify_hmac(
            Provider::Gitea,
            headers,
            body,
            &config.gitea_secret,
            &[
                "X-Gitea-Signature",
                "X-Forgejo-Signature",
                "X-Gogs-Signature",
            ],
            None,
            config.require_secrets,
        )?;
        return if event == "push" {
            github_like(Provider::Gitea, body).map(Some)
        } else {
            Ok(None)
        };
    }
    if let Some(event) = header(headers, "X-Event-Key") {
        verify_bitbucket(headers, body, config)?;
        return if event == "repo:push" {
            bitbucket(body).map(Some)
        } else {
            Ok(None)
        };
    }
    Err(Error::UnknownProvider)
}

fn verify_hmac(
    provider: Provider,
    headers: &[(String, String)],
    body: &[u8],
    secret: &Option<SecretString>,
    names: &[&'static str],
    prefix: Option<&str>,
    required: bool,
) -> Result<(), Error> {
    let Some(secret) = secret else {
        return if required {
            Err(Error::NoSecretConfigured { provider })
        } else {
            Ok(())
        };
    };
    let Some((name, value)) = names
        .iter()
        .find_map(|n| header(headers, n).map(|v| (*n, v)))
    else {
        return Err(Error::MissingSignature {
            provider,
            header: names[0],
        });
    };
    let hex = match prefix {
        Some(p) => value.strip_prefix(p).ok_or(Error::BadSignature {
            provider,
            header: name,
        })?,
        None => value,
    };
    let expected = decode_hex(hex).ok_or(Error::BadSignature {
        provider,
        header: name,
    })?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).map_err(|_| {
        Error::BadSignature {
            provider,
            header: name,
        }
    })?;
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| Error::BadSignature {
            provider,
            header: name,
        })
}

fn verify_token(
    headers: &[(String, String)],
    secret: &Option<SecretString>,
    required: bool,
) -> Result<(), Error> {
    let provider = Provider::GitLab;
    let header_name = "X-Gitlab-Token";
    let Some(secret) = secret else {
        return if required {
            Err(Error::NoSecretConfigured { provider })
        } else {
            Ok(())
        };
    };
    let Some(token) = header(headers, header_name) else {
        return Err(Error::MissingSignature {
            provider,
            header: header_name,
        });
    };
    if constant_time_eq(token.as_bytes(), secret.expose().as_bytes()) {
        Ok(())
    } else {
        Err(Error::BadSignature {
            provider,
            header: header_name,
        })
    }
}

fn verify_bitbucket(
    headers: &[(String, String)],
    body: &[u8],
    config: &WebhookConfig,
) -> Result<(), Error> {
    let provider = Provider::Bitbucket;
    if let Some(uuid) = &config.bitbucket_uuid {
        match header(headers, "X-Hook-UUID") {
            None => {
                return Err(Error::MissingSignature {
                    provider,
                    header: "X-Hook-UUID",
                });
            }
            Some(got) if !constant_time_eq(got.as_bytes(), uuid.as_bytes()) => {
                return Err(Error::BadSignature {
                    provider,
                    header: "X-Hook-UUID",
                });
            }
            Some(_) => {}
        }
    }
    let required = config.require_secrets && config.bitbucket_uuid.is_none();
    verify_hmac(
        provider,
        headers,
        body,
        &config.bitbucket_secret,
        &["X-Hub-Signature"],
        Some("sha256="),
        required,
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn json(provider: Provider, body: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(body).map_err(|e| Error::BadPayload {
        provider,
        reason: e.to_string(),
    })
}

fn strings(v: &Value, pointers: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in pointers {
        if let Some(s) = v.pointer(p).and_then(Value::as_str)
            && !s.is_empty()
            && !out.iter().any(|o| o == s)
        {
            out.push(s.to_string());
        }
    }
    out
}

/// Paths from `commits[].added/modified/removed`, or None if the list may be
/// incomplete (GitHub sends at most 20 commits; GitLab caps too).
fn commit_paths(v: &Value, complete: bool) -> Option<Vec<String>> {
    let commits = v.get("commits")?.as_array()?;
    if !complete {
        return None;
    }
    let mut paths: Vec<String> = Vec::new();
    for c in commits {
        for field in ["added", "modified", "removed"] {
            for p in c.get(field).and_then(Value::as_array).into_iter().flatten() {
                if let Some(p) = p.as_str()
                    && !paths.iter().any(|x| x == p)
                {
                    paths.push(p.to_string());
                }
            }
        }
    }
    Some(paths)
}

/// The `ref` a push payload names.
fn pushed_ref(provider: Provider, v: &Value) -> Result<&str, Error> {
    v.get("ref")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::BadPayload {
            provider,
            reason: "no `ref` field".into(),
        })
}

/// How many commits the payload lists.
fn listed_commits(v: &Value) -> usize {
    v.get("commits")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn github_like(provider: Provider, body: &[u8]) -> Result<PushEvent, Error> {
    let v = json(provider, body)?;
    let ref_name = pushed_ref(provider, &v)?;
    let count = listed_commits(&v);
    // GitHub lists at most 20 commits; a push of more is cut short.
    let complete = count < 20
        && v.get("size")
            .and_then(Value::as_u64)
            .is_none_or(|s| s as usize == count);
    Ok(PushEvent {
        provider,
        repo_urls: strings(
            &v,
            &[
                "/repository/html_url",
                "/repository/clone_url",
                "/repository/ssh_url",
                "/repository/git_url",
            ],
        ),
        ref_name: ref_name.to_string(),
        after: v.get("after").and_then(Value::as_str).map(str::to_string),
        changed_paths: commit_paths(&v, complete),
    })
}

fn gitlab(body: &[u8]) -> Result<PushEvent, Error> {
    let provider = Provider::GitLab;
    let v = json(provider, body)?;
    let ref_name = pushed_ref(provider, &v)?;
    let listed = listed_commits(&v);
    let total = v
        .get("total_commits_count")
        .and_then(Value::as_u64)
        .unwrap_or(listed as u64);
    Ok(PushEvent {
        provider,
        repo_urls: strings(
            &v,
            &[
                "/project/web_url",
                "/project/git_http_url",
                "/project/git_ssh_url",
                "/repository/homepage",
            ],
        ),
        ref_name: ref_name.to_string(),
        after: v.get("after").and_then(Value::as_str).map(str::to_string),
        changed_paths: commit_paths(&v, total as usize == listed),
    })
}

fn bitbucket(body: &[u8]) -> Result<PushEvent, Error> {
    let provider = Provider::Bitbucket;
    let v = json(provider, body)?;
    let change = v
        .pointer("/push/changes/0/new")
        .ok_or_else(|| Error::BadPayload {
            provider,
            reason: "no `push.changes[0].new`".into(),
        })?;
    let name = change
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ref_name = match change.get("type").and_then(Value::as_str) {
        Some("tag") => format!("refs/tags/{name}"),
        _ => format!("refs/heads/{name}"),
    };
    let mut repo_urls = strings(&v, &["/repository/links/html/href"]);
    if let Some(full) = v.pointer("/repository/full_name").and_then(Value::as_str) {
        repo_urls.push(format!("git@bitbucket.org:{full}.git"));
    }
    Ok(PushEvent {
        provider,
        repo_urls,
        ref_name,
        after: change
            .pointer("/target/hash")
            .and_then(Value::as_str)
            .map(str::to_string),
        // Bitbucket Cloud does not list changed files.
        changed_paths: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn github_body() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "ref": "refs/heads/main",
            "before": "0".repeat(40),
            "after": "a".repeat(40),
            "repository": {
                "html_url": "https://github.com/org/repo",
                "clone_url": "https://github.com/org/repo.git",
                "ssh_url": "git@github.com:org/repo.git"
            },
            "commits": [
                {"added": ["apps/a/new.yaml"], "modified": ["apps/a/deploy.yaml"], "removed": []},
                {"added": [], "modified": ["apps/a/deploy.yaml"], "removed": ["apps/b/old.yaml"]}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn github_push_with_a_good_signature() {
        let body = github_body();
        let config = WebhookConfig {
            github_secret: Some(SecretString::new("s3cret")),
            ..Default::default()
        };
        let sig = format!("sha256={}", sign("s3cret", &body));
        let event = parse(
            &h(&[("x-github-event", "push"), ("X-Hub-Signature-256", &sig)]),
            &body,
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(event.provider, Provider::GitHub);
        assert_eq!(event.ref_name, "refs/heads/main");
        assert_eq!(event.after.as_deref(), Some("a".repeat(40).as_str()));
        assert_eq!(
            event.repo_urls,
            [
                "https://github.com/org/repo",
                "https://github.com/org/repo.git",
                "git@github.com:org/repo.git"
            ]
        );
        assert_eq!(
            event.changed_paths.unwrap(),
            ["apps/a/new.yaml", "apps/a/deploy.yaml", "apps/b/old.yaml"]
        );
    }

    #[test]
    fn github_push_with_a_bad_or_missing_signature_is_refused() {
        let body = github_body();
        let config = WebhookConfig {
            github_secret: Some(SecretString::new("s3cret")),
            ..Default::default()
        };
        let wrong = format!("sha256={}", sign("other", &body));
        let err = parse(
            &h(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &wrong)]),
            &body,
            &config,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "GitHub webhook refused: the X-Hub-Signature-256 header does not match the configured secret"
        );
        let err = parse(&h(&[("X-GitHub-Event", "push")]), &body, &config).unwrap_err();
        assert!(matches!(err, Error::MissingSignature { .. }));
        // A body changed after signing is refused.
        let sig = format!("sha256={}", sign("s3cret", &body));
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert!(
            parse(
                &h(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &sig)]),
                &tampered,
                &config
            )
            .is_err()
        );
    }

    #[test]
    fn unsigned_deliveries_depend_on_configuration() {
        let body = github_body();
        let open = WebhookConfig::default();
        assert!(
            parse(&h(&[("X-GitHub-Event", "push")]), &body, &open)
                .unwrap()
                .is_some()
        );
        let strict = WebhookConfig {
            require_secrets: true,
            ..Default::default()
        };
        assert!(matches!(
            parse(&h(&[("X-GitHub-Event", "push")]), &body, &strict),
            Err(Error::NoSecretConfigured {
                provider: Provider::GitHub
            })
        ));
    }

    #[test]
    fn github_ping_is_valid_but_not_a_push() {
        assert_eq!(
            parse(
                &h(&[("X-GitHub-Event", "ping")]),
                b"{}",
                &WebhookConfig::default()
            ),
            Ok(None)
        );
    }

    #[test]
    fn large_github_pushes_refresh_everything() {
        let commits: Vec<_> = (0..20)
            .map(|_| json!({"added": ["x"], "modified": [], "removed": []}))
            .collect();
        let body = serde_json::to_vec(
            &json!({"ref": "refs/heads/main", "repository": {}, "commits": commits}),
        )
        .unwrap();
        let event = parse(
            &h(&[("X-GitHub-Event", "push")]),
            &body,
            &WebhookConfig::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(event.changed_paths, None);
    }

    #[test]
    fn gitlab_token_is_checked() {
        let body = serde_json::to_vec(&json!({
            "ref": "refs/tags/v1.0.0", "after": "b".repeat(40),
            "project": {"web_url": "https://gitlab.example/g/r", "git_http_url": "https://gitlab.example/g/r.git", "git_ssh_url": "git@gitlab.example:g/r.git"},
            "commits": [{"added": [], "modified": ["k/app.yaml"], "removed": []}],
            "total_commits_count": 1
        }))
        .unwrap();
        let config = WebhookConfig {
            gitlab_secret: Some(SecretString::new("tok")),
            ..Default::default()
        };
        let event = parse(
            &h(&[
                ("X-Gitlab-Event", "Tag Push Hook"),
                ("X-Gitlab-Token", "tok"),
            ]),
            &body,
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(event.ref_name, "refs/tags/v1.0.0");
        assert_eq!(event.changed_paths.unwrap(), ["k/app.yaml"]);
        assert_eq!(event.repo_urls.len(), 3);
        let err = parse(
            &h(&[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", "nope")]),
            &body,
            &config,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::BadSignature {
                provider: Provider::GitLab,
                ..
            }
        ));
    }

    #[test]
    fn gitea_and_forgejo_signatures() {
        let body = github_body();
        let config = WebhookConfig {
            gitea_secret: Some(SecretString::new("g")),
            ..Default::default()
        };
        for (event, sig_header) in [
            ("X-Gitea-Event", "X-Gitea-Signature"),
            ("X-Forgejo-Event", "X-Forgejo-Signature"),
        ] {
            let sig = sign("g", &body);
            let e = parse(&h(&[(event, "push"), (sig_header, &sig)]), &body, &config)
                .unwrap()
                .unwrap();
            assert_eq!(e.provider, Provider::Gitea);
            assert!(
                parse(
                    &h(&[(event, "push"), (sig_header, &sign("x", &body))]),
                    &body,
                    &config
                )
                .is_err()
            );
        }
    }

    #[test]
    fn bitbucket_push() {
        let body = serde_json::to_vec(&json!({
            "push": {"changes": [{"new": {"type": "branch", "name": "main", "target": {"hash": "c".repeat(40)}}}]},
            "repository": {"full_name": "team/repo", "links": {"html": {"href": "https://bitbucket.org/team/repo"}}}
        }))
        .unwrap();
        let config = WebhookConfig {
            bitbucket_secret: Some(SecretString::new("bb")),
            ..Default::default()
        };
        let sig = format!("sha256={}", sign("bb", &body));
        let e = parse(
            &h(&[("X-Event-Key", "repo:push"), ("X-Hub-Signature", &sig)]),
            &body,
            &config,
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.ref_name, "refs/heads/main");
        assert_eq!(
            e.repo_urls,
            [
                "https://bitbucket.org/team/repo",
                "git@bitbucket.org:team/repo.git"
            ]
        );
        assert_eq!(e.changed_paths, None);
        let uuid_cfg = WebhookConfig {
            bitbucket_uuid: Some("{abc}".into()),
            ..Default::default()
        };
        assert!(
            parse(
                &h(&[("X-Event-Key", "repo:push"), ("X-Hook-UUID", "{abc}")]),
                &body,
                &uuid_cfg
            )
            .is_ok()
        );
        assert!(
            parse(
                &h(&[("X-Event-Key", "repo:push"), ("X-Hook-UUID", "{zzz}")]),
                &body,
                &uuid_cfg
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_sender_and_bad_json() {
        assert_eq!(
            parse(&h(&[]), b"{}", &WebhookConfig::default()),
            Err(Error::UnknownProvider)
        );
        let err = parse(
            &h(&[("X-GitHub-Event", "push")]),
            b"not json",
            &WebhookConfig::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("GitHub webhook: the body is not valid"),
            "{err}"
        );
    }
}
