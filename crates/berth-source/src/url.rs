//! Repository URLs: parsing the forms git accepts, Argo CD's normalization
//! for comparing them, a cache key shared by the forms of one repository, and
//! redaction so that credentials never reach a log line.

use std::fmt;
use std::path::PathBuf;

/// Why a repository URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Empty, or not a form git accepts.
    #[error("repository URL {url:?} is not valid: {reason}")]
    Invalid {
        /// The URL, with any password removed.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `https://`
    Https,
    /// `http://` (no TLS: allowed, but credentials should not be sent over it)
    Http,
    /// `ssh://` or the scp-like `user@host:path`
    Ssh,
    /// `git://`, the unauthenticated git daemon protocol
    Git,
    /// `file://` or a local path
    File,
}

/// A parsed repository URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoUrl {
    /// The transport.
    pub transport: Transport,
    /// User name given in the URL (`git` in `git@host:org/repo`).
    pub user: Option<String>,
    /// Host name, lower-cased; empty for local repositories.
    pub host: String,
    /// Port, when given explicitly.
    pub port: Option<u16>,
    /// Path on the host, as written (leading `/` included for URLs).
    pub path: String,
    original_redacted: String,
    has_password: bool,
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoUrl({})", self.original_redacted)
    }
}

impl fmt::Display for RepoUrl {
    /// The URL as given, with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original_redacted)
    }
}

impl RepoUrl {
    /// Parses `https://host/org/repo(.git)`, `ssh://user@host:port/path`,
    /// `user@host:org/repo`, `git://host/path`, `file:///path` or an absolute
    /// local path.
    pub fn parse(input: &str) -> Result<RepoUrl, Error> {
        let trimmed = input.trim();
        let invalid = |reason: &str| Error::Invalid {
            url: redact(trimmed),
            reason: reason.to_string(),
        };
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if let Some((scheme, rest)) = trimmed.split_once("://") {
            let transport = match scheme.to_ascii_lowercase().as_str() {
                "https" => Transport::Https,
                "http" => Transport::Http,
                "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
                "git" => Transport::Git,
                "file" => Transport::File,
                other => return Err(invalid(&format!("unsupported scheme {other:?}"))),
            };
            if transport == Transport::File {
                if !rest.starts_with('/') {
                    return Err(invalid("a file:// URL needs an absolute path"));
                }
                return Ok(Self::local(rest, trimmed));
            }
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let (userinfo, hostport) = match authority.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, authority),
            };
            let (user, has_password) = match userinfo {
                Some(u) => match u.split_once(':') {
                    Some((name, _)) => (Some(name.to_string()), true),
                    None => (Some(u.to_string()), false),
                },
                None => (None, false),
            };
            let (host, port) = split_port(hostport).map_err(|r| invalid(&r))?;
            if host.is_empty() {
                return Err(invalid("it has no host"));
            }
            if path.trim_matches('/').is_empty() {
                return Err(invalid("it has no repository path"));
            }
            return Ok(RepoUrl {
                transport,
                user: user.filter(|u| !u.is_empty()),
                host: host.to_ascii_lowercase(),
                port,
                path: path.to_string(),
                original_redacted: redact(trimmed),
                has_password,
            });
        }
        if trimmed.starts_with('/') {
            return Ok(Self::local(trimmed, trimmed));
        }
        // scp-like syntax: [user@]host:path, where the host part has no '/'.
        if let Some((left, path)) = trimmed.split_once(':')
            && !left.contains('/')
            && !path.is_empty()
        {
            let (user, host) = match left.rsplit_once('@') {
                Some((u, h)) => (Some(u.to_string()), h),
                None => (None, left),
            };
            if host.is_empty() {
                return Err(invalid("it has no host"));
            }
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            return Ok(RepoUrl {
                transport: Transport::Ssh,
                user,
                host: host.to_ascii_lowercase(),
                port: None,
                path,
                original_redacted: trimmed.to_string(),
                has_password: false,
            });
        }
        Err(invalid(
            "use https://, ssh://, user@host:path, git://, file:// or an absolute path",
        ))
    }

    fn local(path: &str, original: &str) -> RepoUrl {
        RepoUrl {
            transport: Transport::File,
            user: None,
            host: String::new(),
            port: None,
            path: path.to_string(),
            original_redacted: redact(original),
            has_password: false,
        }
    }

    /// Whether the URL itself carries a password (it should come from a
    /// Secret instead; the password is never kept).
    pub fn has_password(&self) -> bool {
        self.has_password
    }

    /// The path of a local repository.
    pub fn local_path(&self) -> Option<PathBuf> {
        (self.transport == Transport::File).then(|| PathBuf::from(&self.path))
    }

    /// A key shared by every form of the same repository: `https://h/o/r`,
    /// `https://h/o/r.git` and `git@h:o/r` all give `h/o/r`. Ports given
    /// explicitly are kept (another port may be another server).
    pub fn cache_key(&self) -> String {
        let path = self.path.trim_end_matches('/');
        let path = path
            .strip_suffix(".git")
            .unwrap_or(path)
            .trim_end_matches('/');
        if self.transport == Transport::File {
            return format!("file{path}");
        }
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let path = path.trim_start_matches('/');
        format!("{}{port}/{}", self.host, path.to_ascii_lowercase())
    }

    /// The URL to hand to git, without any password it was written with.
    pub fn for_git(&self) -> String {
        self.original_redacted.replace(":***@", "@")
    }
}

fn split_port(hostport: &str) -> Result<(&str, Option<u16>), String> {
    // IPv6 literal: [::1]:8080
    if let Some(rest) = hostport.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("unterminated IPv6 address".into());
        };
        return match after.strip_prefix(':') {
            Some(p) => Ok((
                host,
                Some(p.parse().map_err(|_| format!("bad port {p:?}"))?),
            )),
            None => Ok((host, None)),
        };
    }
    match hostport.rsplit_once(':') {
        Some((host, p)) if !p.is_empty() => Ok((
            host,
            Some(p.parse().map_err(|_| format!("bad port {p:?}"))?),
        )),
        Some((host, _)) => Ok((host, None)),
        None => Ok((hostport, None)),
    }
}

/// Replaces the password in `scheme://user:password@host/...` with `***`.
/// Text that is not such a URL is returned unchanged.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..]),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Argo CD's URL normalization (`NormalizeGitURL`), used to decide whether a
/// repository Secret belongs to a URL: lower-cased, scp-like URLs rewritten
/// as `user@host/path`, `ssh://` and a trailing `.git` removed.
pub fn normalize(url: &str) -> String {
    let mut u = url.trim().to_lowercase();
    let scp_like = !u.starts_with("ssh://")
        && u.split_once('@').is_some_and(|(user, rest)| {
            !user.contains('/') && !user.contains(':') && !rest.contains('@')
        })
        && !u.contains("://");
    if scp_like {
        if let Some(i) = u.find(':') {
            u.replace_range(i..i + 1, "/");
        }
        u = format!("ssh://{u}");
    }
    if let Some(stripped) = u.strip_suffix(".git") {
        u = stripped.to_string();
    }
    u.strip_prefix("ssh://").map(str::to_string).unwrap_or(u)
}

/// Whether two URLs name the same repository, as Argo CD decides it.
pub fn same_url(a: &str, b: &str) -> bool {
    let (a, b) = (normalize(a), normalize(b));
    !a.is_empty() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_git_accepts() {
        let u = RepoUrl::parse("https://GitHub.com/Org/Repo.git").unwrap();
        assert_eq!(
            (u.transport, u.host.as_str(), u.path.as_str()),
            (Transport::Https, "github.com", "/Org/Repo.git")
        );
        let u = RepoUrl::parse("git@github.com:org/repo").unwrap();
        assert_eq!(
            (u.transport, u.user.as_deref(), u.path.as_str()),
            (Transport::Ssh, Some("git"), "/org/repo")
        );
        let u = RepoUrl::parse("ssh://git@host:2222/srv/repo.git").unwrap();
        assert_eq!((u.transport, u.port), (Transport::Ssh, Some(2222)));
        let u = RepoUrl::parse("git://127.0.0.1:9418/repo").unwrap();
        assert_eq!((u.transport, u.port), (Transport::Git, Some(9418)));
        let u = RepoUrl::parse("file:///srv/git/repo").unwrap();
        assert_eq!(u.local_path(), Some(PathBuf::from("/srv/git/repo")));
        let u = RepoUrl::parse("/srv/git/repo").unwrap();
        assert_eq!(u.transport, Transport::File);
        let u = RepoUrl::parse("https://[::1]:8443/repo").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", Some(8443)));
    }

    #[test]
    fn refuses_what_git_would_not_take() {
        for bad in [
            "",
            "ftp://host/repo",
            "https://host",
            "https:///repo",
            "relative/path",
            "https://host:99999/r",
            "file://relative",
        ] {
            assert!(RepoUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forms_of_one_repository_share_a_cache_key() {
        let key = |u: &str| RepoUrl::parse(u).unwrap().cache_key();
        assert_eq!(key("https://github.com/org/repo"), "github.com/org/repo");
        assert_eq!(
            key("https://github.com/org/repo.git"),
            "github.com/org/repo"
        );
        assert_eq!(key("https://github.com/org/repo/"), "github.com/org/repo");
        assert_eq!(key("git@github.com:org/repo"), "github.com/org/repo");
        assert_eq!(
            key("ssh://git@github.com/org/repo.git"),
            "github.com/org/repo"
        );
        assert_eq!(
            key("https://user:pw@GITHUB.com/Org/Repo"),
            "github.com/org/repo"
        );
        assert_ne!(
            key("https://host:8443/r"),
            key("https://host/r"),
            "another port may be another server"
        );
        assert_eq!(key("file:///srv/r.git"), "file/srv/r");
    }

    #[test]
    fn passwords_never_survive_display() {
        let u = RepoUrl::parse("https://bot:s3cr3t@host/org/repo").unwrap();
        assert!(u.has_password());
        for shown in [u.to_string(), format!("{u:?}"), u.for_git()] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        assert_eq!(u.for_git(), "https://bot@host/org/repo");
        let err = RepoUrl::parse("ftp://bot:s3cr3t@host/r").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert_eq!(redact("https://a:b@h/p"), "https://a:***@h/p");
        assert_eq!(redact("https://h/p"), "https://h/p");
    }

    #[test]
    fn argo_cd_normalization() {
        assert_eq!(
            normalize("git@github.com:org/repo.git"),
            "git@github.com/org/repo"
        );
        assert_eq!(
            normalize("ssh://git@github.com/org/repo"),
            "git@github.com/org/repo"
        );
        assert_eq!(
            normalize("HTTPS://GitHub.com/Org/Repo.git"),
            "https://github.com/org/repo"
        );
        assert!(same_url(
            "https://github.com/org/repo",
            "https://github.com/org/repo.git"
        ));
        assert!(same_url(
            "git@github.com:org/repo.git",
            "ssh://git@github.com/org/repo"
        ));
        assert!(!same_url(
            "https://github.com/org/repo",
            "git@github.com:org/repo"
        ));
        assert!(!same_url("", ""));
    }
}
