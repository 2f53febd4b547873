//! Repository credentials in Argo CD's format.
//!
//! Argo CD keeps them in Secrets labelled `argocd.argoproj.io/secret-type`:
//! `repository` for one repository (matched by URL, Argo CD's normalization)
//! and `repo-creds` for a template that applies to every URL starting with
//! its `url` (the longest prefix wins). A repository Secret without
//! credentials of its own takes them from the matching template. This module
//! reads the Secrets' decoded data and picks the credentials for a URL; it
//! does not talk to the cluster.

use std::collections::BTreeMap;
use std::fmt;

use crate::url::{normalize, same_url};

/// The label that marks Argo CD's configuration Secrets.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// Why a credentials Secret could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A required field is missing.
    #[error("secret {secret}: field `{field}` is required")]
    MissingField {
        /// namespace/name of the Secret.
        secret: String,
        /// The field.
        field: &'static str,
    },
    /// A field holds a value of the wrong form.
    #[error("secret {secret}: field `{field}` must be {expected}, not {value:?}")]
    BadValue {
        /// namespace/name of the Secret.
        secret: String,
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// The value found (never a secret value).
        value: String,
    },
    /// A manifest file could not be read as Secrets.
    #[error("{source_name}: {reason}")]
    Manifest {
        /// The file (or other source) and, where known, the document.
        source_name: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The label is not one this module handles.
    #[error(
        "secret {secret}: label {SECRET_TYPE_LABEL}={value:?} is not `repository` or `repo-creds`"
    )]
    UnknownType {
        /// namespace/name of the Secret.
        secret: String,
        /// The label value.
        value: String,
    },
}

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The value itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(***)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Which kind of credentials Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// `repository`: one repository.
    Repository,
    /// `repo-creds`: a template for every URL with this prefix.
    RepoCreds,
}

/// The credentials and options of one repository or template Secret.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// User name for HTTPS basic authentication.
    pub username: Option<String>,
    /// Password or token for HTTPS basic authentication.
    pub password: Option<SecretString>,
    /// Bearer token for HTTPS.
    pub bearer_token: Option<SecretString>,
    /// Private key for SSH, in OpenSSH or PEM format.
    pub ssh_private_key: Option<SecretString>,
    /// TLS client certificate (PEM).
    pub tls_client_cert_data: Option<String>,
    /// TLS client key (PEM).
    pub tls_client_cert_key: Option<SecretString>,
    /// Skip TLS verification and SSH host-key checking.
    pub insecure: bool,
    /// Skip SSH host-key checking only (older Argo CD field).
    pub insecure_ignore_host_key: bool,
    /// HTTP(S) proxy URL.
    pub proxy: Option<String>,
    /// Hosts not to proxy.
    pub no_proxy: Option<String>,
    /// Always send basic credentials, without waiting for a challenge.
    pub force_http_basic_auth: bool,
}

impl Credentials {
    /// Whether any credential (not just options) is set: Argo CD's test for
    /// falling back to a template.
    pub fn has_credentials(&self) -> bool {
        self.username.is_some()
            || self.password.is_some()
            || self.ssh_private_key.is_some()
            || self.bearer_token.is_some()
            || self.tls_client_cert_data.is_some()
    }
}

/// One parsed `repository` or `repo-creds` Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSecret {
    /// namespace/name, for messages.
    pub secret: String,
    /// Which kind.
    pub kind: SecretKind,
    /// The repository URL, or the template's URL prefix.
    pub url: String,
    /// `git` (default) or `helm`.
    pub repo_type: String,
    /// Display name.
    pub name: Option<String>,
    /// The AppProject it is scoped to, if any.
    pub project: Option<String>,
    /// The credentials.
    pub credentials: Credentials,
}

impl RepoSecret {
    /// Reads a Secret's label value and decoded `data`.
    ///
    /// `secret` is `namespace/name`, used only in messages; values of secret
    /// fields never appear in errors.
    pub fn from_data(
        secret: &str,
        type_label: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<RepoSecret, Error> {
        let kind = match type_label {
            "repository" => SecretKind::Repository,
            "repo-creds" => SecretKind::RepoCreds,
            other => {
                return Err(Error::UnknownType {
                    secret: secret.into(),
                    value: other.into(),
                });
            }
        };
        let text = |field: &str| {
            data.get(field)
                .map(|v| String::from_utf8_lossy(v).trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let secret_text = |field: &str| {
            data.get(field)
                .map(|v| String::from_utf8_lossy(v).to_string())
                .filter(|s| !s.trim().is_empty())
                .map(SecretString)
        };
        let flag = |field: &'static str| -> Result<bool, Error> {
            match text(field).as_deref() {
                None => Ok(false),
                Some("true") | Some("True") | Some("TRUE") | Some("1") => Ok(true),
                Some("false") | Some("False") | Some("FALSE") | Some("0") => Ok(false),
                Some(other) => Err(Error::BadValue {
                    secret: secret.into(),
                    field,
                    expected: "true or false",
                    value: other.into(),
                }),
            }
        };
        let url = text("url").ok_or(Error::MissingField {
            secret: secret.into(),
            field: "url",
        })?;
        Ok(RepoSecret {
            secret: secret.into(),
            kind,
            url,
            repo_type: text("type").unwrap_or_else(|| "git".into()),
            name: text("name"),
            project: text("project"),
            credentials: Credentials {
                username: text("username"),
                password: secret_text("password"),
                bearer_token: secret_text("bearerToken"),
                ssh_private_key: secret_text("sshPrivateKey"),
                tls_client_cert_data: text("tlsClientCertData"),
                tls_client_cert_key: secret_text("tlsClientCertKey"),
                insecure: flag("insecure")?,
                insecure_ignore_host_key: flag("insecureIgnoreHostKey")?,
                proxy: text("proxy"),
                no_proxy: text("noProxy"),
                force_http_basic_auth: flag("forceHttpBasicAuth")?,
            },
        })
    }
}

/// Reads repository Secrets from Kubernetes manifests (YAML, several
/// documents allowed), for running without a cluster: the same Secrets Argo
/// CD keeps, in a file. Documents that are not Secrets labelled
/// `repository` or `repo-creds` are skipped; `data` is base64 as in
/// Kubernetes, `stringData` plain text and takes precedence.
///
/// `source_name` names the file in errors; secret values never appear in them.
pub fn load_manifests(source_name: &str, text: &str) -> Result<Vec<RepoSecret>, Error> {
    use base64::Engine;
    let manifest_error = |doc: usize, reason: String| Error::Manifest {
        source_name: format!("{source_name} (document {})", doc + 1),
        reason,
    };
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| Error::Manifest {
            source_name: source_name.to_string(),
            reason: format!("not valid YAML: {e}"),
        })?;
    let mut secrets = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let Some(obj) = doc.as_object() else {
            return Err(manifest_error(
                i,
                "expected a Kubernetes object (a mapping)".into(),
            ));
        };
        if obj.get("kind").and_then(|k| k.as_str()) != Some("Secret") {
            continue;
        }
        let meta = obj.get("metadata");
        let label = meta
            .and_then(|m| m.pointer(&format!("/labels/{}", SECRET_TYPE_LABEL.replace('/', "~1"))))
            .and_then(|v| v.as_str());
        let Some(label) = label.filter(|l| *l == "repository" || *l == "repo-creds") else {
            continue;
        };
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(|v| v.as_str())
            .unwrap_or("argocd");
        let id = format!("{namespace}/{name}");
        let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        if let Some(map) = obj.get("data").and_then(|d| d.as_object()) {
            for (key, value) in map {
                let text = value.as_str().ok_or_else(|| {
                    manifest_error(i, format!("secret {id}: data.{key} must be a string"))
                })?;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|_| manifest_error(i, format!("secret {id}: data.{key} is not base64 (use stringData for plain text)")))?;
                data.insert(key.clone(), decoded);
            }
        }
        if let Some(map) = obj.get("stringData").and_then(|d| d.as_object()) {
            for (key, value) in map {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(manifest_error(
                            i,
                            format!("secret {id}: stringData.{key} must be a string"),
                        ));
                    }
                };
                data.insert(key.clone(), text.into_bytes());
            }
        }
        secrets.push(RepoSecret::from_data(&id, label, &data)?);
    }
    Ok(secrets)
}

/// All known credentials Secrets; answers "which credentials for this URL".
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    repositories: Vec<RepoSecret>,
    templates: Vec<RepoSecret>,
}

impl CredentialStore {
    /// Builds a store from parsed Secrets.
    pub fn new(secrets: impl IntoIterator<Item = RepoSecret>) -> Self {
        let mut store = CredentialStore::default();
        for s in secrets {
            match s.kind {
                SecretKind::Repository => store.repositories.push(s),
                SecretKind::RepoCreds => store.templates.push(s),
            }
        }
        store
    }

    /// The credentials for `url`, for an app in `project`.
    ///
    /// A repository Secret of the same URL scoped to `project` wins over an
    /// unscoped one; one scoped to another project is not used. If the
    /// repository Secret has no credentials (or there is none), the template
    /// with the longest matching URL prefix supplies them, keeping the
    /// repository Secret's options.
    pub fn lookup(&self, url: &str, project: Option<&str>) -> Option<Credentials> {
        let repo = self
            .repositories
            .iter()
            .filter(|r| same_url(&r.url, url))
            .filter(|r| r.project.is_none() || r.project.as_deref() == project)
            .max_by_key(|r| r.project.is_some());
        if let Some(repo) = repo
            && repo.credentials.has_credentials()
        {
            return Some(repo.credentials.clone());
        }
        let template = self.template_for(url);
        match (repo, template) {
            (Some(repo), Some(t)) => {
                let mut merged = t.credentials.clone();
                merged.insecure |= repo.credentials.insecure;
                merged.insecure_ignore_host_key |= repo.credentials.insecure_ignore_host_key;
                if repo.credentials.proxy.is_some() {
                    merged.proxy = repo.credentials.proxy.clone();
                }
                Some(merged)
            }
            (Some(repo), None) => Some(repo.credentials.clone()),
            (None, Some(t)) => Some(t.credentials.clone()),
            (None, None) => None,
        }
    }

    /// The template whose URL is the longest prefix of `url` (the first of
    /// equals), compared after Argo CD's normalization.
    pub fn template_for(&self, url: &str) -> Option<&RepoSecret> {
        let target = normalize(url);
        let mut best: Option<(&RepoSecret, usize)> = None;
        for t in &self.templates {
            let prefix = normalize(&t.url);
            if prefix.is_empty() || !target.starts_with(&prefix) {
                continue;
            }
            if best.is_none_or(|(_, len)| prefix.len() > len) {
                best = Some((t, prefix.len()));
            }
        }
        best.map(|(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn secret(kind: &str, pairs: &[(&str, &str)]) -> RepoSecret {
        RepoSecret::from_data("argocd/s", kind, &data(pairs)).unwrap()
    }

    #[test]
    fn loads_secrets_from_manifests() {
        let yaml = r#"
apiVersion: v1
kind: Secret
metadata:
  name: private-repo
  namespace: argocd
  labels:
    argocd.argoproj.io/secret-type: repository
stringData:
  url: https://git.example/org/app
  username: bot
  insecure: true
data:
  password: aHVudGVyMg==
---
apiVersion: v1
kind: Secret
metadata:
  name: unrelated
data:
  x: eQ==
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
apiVersion: v1
kind: Secret
metadata:
  name: org-creds
  labels: {argocd.argoproj.io/secret-type: repo-creds}
stringData:
  url: https://git.example/org
  sshPrivateKey: |
    -----BEGIN OPENSSH PRIVATE KEY-----
    abc
    -----END OPENSSH PRIVATE KEY-----
"#;
        let secrets = load_manifests("repos.yaml", yaml).unwrap();
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[0].secret, "argocd/private-repo");
        assert_eq!(
            secrets[0]
                .credentials
                .password
                .as_ref()
                .map(SecretString::expose),
            Some("hunter2")
        );
        assert!(secrets[0].credentials.insecure);
        assert_eq!(secrets[1].kind, SecretKind::RepoCreds);
        assert!(
            secrets[1]
                .credentials
                .ssh_private_key
                .as_ref()
                .unwrap()
                .expose()
                .ends_with("KEY-----\n")
        );
        let store = CredentialStore::new(secrets);
        assert_eq!(
            store
                .lookup("https://git.example/org/app.git", None)
                .unwrap()
                .username
                .as_deref(),
            Some("bot")
        );
    }

    #[test]
    fn manifest_errors_name_the_file_and_document() {
        let err = load_manifests("repos.yaml", "a: [unclosed").unwrap_err();
        assert!(
            err.to_string().starts_with("repos.yaml: not valid YAML"),
            "{err}"
        );
        let bad = "---\nkind: Secret\nmetadata:\n  name: s\n  labels: {argocd.argoproj.io/secret-type: repository}\ndata:\n  password: '%%%'\n";
        let err = load_manifests("repos.yaml", bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "repos.yaml (document 1): secret argocd/s: data.password is not base64 (use stringData for plain text)"
        );
        let err = load_manifests("repos.yaml", "- just\n- a list\n").unwrap_err();
        assert!(
            err.to_string().contains("expected a Kubernetes object"),
            "{err}"
        );
        let missing = "kind: Secret\nmetadata:\n  name: s\n  labels: {argocd.argoproj.io/secret-type: repository}\nstringData:\n  password: x\n";
        assert_eq!(
            load_manifests("f", missing).unwrap_err().to_string(),
            "secret argocd/s: field `url` is required"
        );
    }

    #[test]
    fn reads_argo_cd_fields() {
        let s = secret(
            "repository",
            &[
                ("url", "https://git.example/org/app"),
                ("username", "bot"),
                ("password", "tok"),
                ("insecure", "true"),
                ("project", "team-a"),
                ("type", "git"),
            ],
        );
        assert_eq!(s.kind, SecretKind::Repository);
        assert_eq!(s.credentials.username.as_deref(), Some("bot"));
        assert_eq!(
            s.credentials.password.as_ref().map(SecretString::expose),
            Some("tok")
        );
        assert!(s.credentials.insecure);
        assert_eq!(s.project.as_deref(), Some("team-a"));
    }

    #[test]
    fn errors_name_the_secret_and_field_but_never_a_value() {
        let err = RepoSecret::from_data(
            "argocd/repo-1",
            "repository",
            &data(&[("password", "hunter2")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret argocd/repo-1: field `url` is required"
        );
        let err = RepoSecret::from_data(
            "argocd/repo-1",
            "repository",
            &data(&[("url", "https://h/r"), ("insecure", "yes")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret argocd/repo-1: field `insecure` must be true or false, not \"yes\""
        );
        let err = RepoSecret::from_data("argocd/c", "cluster", &data(&[])).unwrap_err();
        assert!(
            err.to_string()
                .contains("is not `repository` or `repo-creds`")
        );
    }

    #[test]
    fn secret_values_never_show_in_debug_output() {
        let s = secret(
            "repository",
            &[
                ("url", "https://h/r"),
                ("password", "hunter2"),
                ("sshPrivateKey", "-----BEGIN KEY"),
            ],
        );
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("BEGIN KEY"),
            "{shown}"
        );
    }

    #[test]
    fn repository_secret_matches_by_normalized_url() {
        let store = CredentialStore::new([secret(
            "repository",
            &[
                ("url", "https://git.example/Org/App.git"),
                ("username", "u"),
            ],
        )]);
        assert!(store.lookup("https://git.example/org/app", None).is_some());
        assert!(
            store
                .lookup("https://git.example/org/other", None)
                .is_none()
        );
    }

    #[test]
    fn longest_template_prefix_wins() {
        let store = CredentialStore::new([
            secret(
                "repo-creds",
                &[("url", "https://git.example/"), ("username", "generic")],
            ),
            secret(
                "repo-creds",
                &[
                    ("url", "https://git.example/team-a/"),
                    ("username", "team-a"),
                ],
            ),
            secret(
                "repo-creds",
                &[("url", "git@git.example:"), ("username", "ssh")],
            ),
        ]);
        let user = |url: &str| store.lookup(url, None).and_then(|c| c.username);
        assert_eq!(
            user("https://git.example/team-a/app").as_deref(),
            Some("team-a")
        );
        assert_eq!(
            user("https://git.example/team-b/app").as_deref(),
            Some("generic")
        );
        assert_eq!(
            user("git@git.example:team-a/app").as_deref(),
            Some("ssh"),
            "ssh templates match ssh URLs"
        );
        assert_eq!(user("https://other.example/app"), None);
    }

    #[test]
    fn repository_without_credentials_takes_them_from_a_template() {
        let store = CredentialStore::new([
            secret(
                "repository",
                &[
                    ("url", "https://git.example/team-a/app"),
                    ("insecure", "true"),
                ],
            ),
            secret(
                "repo-creds",
                &[
                    ("url", "https://git.example/team-a"),
                    ("username", "bot"),
                    ("password", "p"),
                ],
            ),
        ]);
        let c = store
            .lookup("https://git.example/team-a/app", None)
            .unwrap();
        assert_eq!(c.username.as_deref(), Some("bot"));
        assert!(c.insecure, "the repository's own options are kept");
    }

    #[test]
    fn project_scoped_secrets_apply_only_to_their_project() {
        let store = CredentialStore::new([
            secret(
                "repository",
                &[("url", "https://h/r"), ("username", "shared")],
            ),
            secret(
                "repository",
                &[
                    ("url", "https://h/r"),
                    ("username", "team-a"),
                    ("project", "team-a"),
                ],
            ),
            secret(
                "repository",
                &[
                    ("url", "https://h/only-b"),
                    ("username", "b"),
                    ("project", "team-b"),
                ],
            ),
        ]);
        let user = |url: &str, p: Option<&str>| store.lookup(url, p).and_then(|c| c.username);
        assert_eq!(
            user("https://h/r", Some("team-a")).as_deref(),
            Some("team-a")
        );
        assert_eq!(
            user("https://h/r", Some("team-c")).as_deref(),
            Some("shared")
        );
        assert_eq!(user("https://h/only-b", Some("team-a")), None);
    }
}
