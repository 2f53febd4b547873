//! The CLI's side of the API: its configuration file (Argo CD's layout:
//! contexts, servers, users with their tokens; mode 0600) and an HTTP
//! client that sends the current context's token.
//!
//! Which file: `--config`, else `BERTH_CONFIG`, else
//! `~/.config/berth/config` (clap reads the flag and the variable).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One context: a server and the user logged in to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextEntry {
    /// The context's name.
    pub name: String,
    /// The server's URL.
    pub server: String,
    /// The user entry holding the token.
    pub user: String,
}

/// One server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerEntry {
    /// Its URL.
    pub server: String,
}

/// One user's credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserEntry {
    /// The entry's name.
    pub name: String,
    /// The bearer token.
    #[serde(
        rename = "auth-token",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub auth_token: String,
}

/// The configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Contexts.
    #[serde(default)]
    pub contexts: Vec<ContextEntry>,
    /// The context in use.
    #[serde(rename = "current-context", default)]
    pub current_context: String,
    /// Servers.
    #[serde(default)]
    pub servers: Vec<ServerEntry>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

/// The default file: `~/.config/berth/config`.
pub fn default_path() -> PathBuf {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("berth")
        .join("config")
}

impl ClientConfig {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<ClientConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_saphyr::from_str(&text)
                .with_context(|| format!("{}: not a berth configuration", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes `path` readable by its owner only (it holds tokens).
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_saphyr::to_string(self).context("writing the configuration")?;
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
        drop(file);
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// Records a login to `server` as `token`, and makes it current.
    pub fn login(&mut self, server: &str, token: &str) {
        let name = server
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string();
        self.contexts.retain(|c| c.name != name);
        self.contexts.push(ContextEntry {
            name: name.clone(),
            server: server.to_string(),
            user: name.clone(),
        });
        self.servers.retain(|s| s.server != server);
        self.servers.push(ServerEntry {
            server: server.to_string(),
        });
        self.users.retain(|u| u.name != name);
        self.users.push(UserEntry {
            name: name.clone(),
            auth_token: token.to_string(),
        });
        self.current_context = name;
    }

    /// The current context's server and token.
    pub fn current(&self) -> Result<(String, String)> {
        let Some(ctx) = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)
        else {
            bail!("not logged in: run `berth login SERVER` (or give --config)");
        };
        let token = self
            .users
            .iter()
            .find(|u| u.name == ctx.user)
            .map(|u| u.auth_token.clone())
            .unwrap_or_default();
        if token.is_empty() {
            bail!(
                "no token for {}: run `berth login {}`",
                ctx.server,
                ctx.server
            );
        }
        Ok((ctx.server.clone(), token))
    }
}

/// An API client for the current context.
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// From the configuration at `path`.
    pub fn from_config(path: &Path) -> Result<Api> {
        let config = ClientConfig::load(path)?;
        let (base, token) = config.current()?;
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    /// The server's URL.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// Sends a request; a non-2xx answer becomes an error with the server's
    /// message.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the Berth server at {}", self.base))?;
        answer(response).await
    }
}

impl Api {
    /// Opens a server-sent events stream (`path` under the server).
    pub async fn stream(&self, path: &str) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .with_context(|| format!("cannot reach the Berth server at {}", self.base))?;
        if !response.status().is_success() {
            answer(response).await?;
            bail!("the event stream was refused");
        }
        Ok(response)
    }
}

/// The JSON of a response, or its error message.
pub async fn answer(response: reqwest::Response) -> Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("the server answered {status}"));
    if status == reqwest::StatusCode::UNAUTHORIZED {
        bail!("{message} (run `berth login` again)");
    }
    bail!("{message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_round_trip_with_owner_only_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("berth-config-{}", std::process::id()));
        let path = dir.join("config");
        let mut c = ClientConfig::load(&path).unwrap();
        assert!(c.current().is_err());
        c.login("http://127.0.0.1:8080", "t1");
        c.login("http://127.0.0.1:8080", "t2");
        c.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = ClientConfig::load(&path).unwrap();
        assert_eq!(back.contexts.len(), 1, "a second login replaces the first");
        assert_eq!(
            back.current().unwrap(),
            ("http://127.0.0.1:8080".to_string(), "t2".to_string())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
