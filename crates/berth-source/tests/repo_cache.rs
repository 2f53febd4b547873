//! The repository cache against real Git servers: git daemon, smart HTTP
//! through git http-backend with basic authentication, sshd, and local paths.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::Path;

use berth_source::creds::{Credentials, SecretString};
use berth_source::repo::{CacheOptions, EntryKind, Error, RepoCache};
use berth_source::revision::RevisionKind;
use berth_source::url::RepoUrl;
use berth_testenv::git::{GitFixture, TempDir, git_daemon, git_http, git_https, git_ssh};

const APP: &[(&str, &str)] = &[
    ("apps/web/deployment.yaml", "kind: Deployment\n"),
    ("apps/web/service.yaml", "kind: Service\n"),
    ("apps/api/config.yaml", "kind: ConfigMap\n"),
    ("README.md", "hello\n"),
];

fn cache(dir: &TempDir) -> RepoCache {
    RepoCache::new(dir.path().join("cache"), CacheOptions::default()).unwrap()
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials {
        username: Some(user.into()),
        password: Some(SecretString::new(password)),
        ..Default::default()
    }
}

#[test]
fn resolves_branches_tags_constraints_and_shas_over_git_daemon() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("app", APP).unwrap();
    repo.tag("v1.0.0", false).unwrap();
    let second = repo
        .commit(
            &[("apps/web/deployment.yaml", "kind: Deployment\nv: 2\n")],
            "second",
        )
        .unwrap();
    repo.push("main").unwrap();
    repo.tag("v1.1.0", true).unwrap();
    repo.tag("v2.0.0-rc.1", false).unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/app.git", daemon.port);
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = cache(&tmp);

    let main = cache.resolve(&url, None, "main", "").unwrap();
    assert_eq!(main.resolved.sha, second);
    assert_eq!(main.resolved.kind, RevisionKind::Branch);
    assert_eq!(main.commit.message.trim(), "second");
    assert_eq!(main.commit.author, "Berth Test <test@berth.invalid>");
    assert!(main.commit.signature.is_none());

    assert_eq!(
        cache.resolve(&url, None, "HEAD", "").unwrap().resolved.sha,
        second
    );
    assert_eq!(
        cache.resolve(&url, None, "", "").unwrap().resolved.sha,
        second
    );
    let first = repo.git(&["rev-parse", "v1.0.0"]).unwrap();
    assert_eq!(
        cache
            .resolve(&url, None, "v1.0.0", "")
            .unwrap()
            .resolved
            .sha,
        first
    );
    let annotated = cache.resolve(&url, None, "v1.1.0", "").unwrap();
    assert_eq!(
        annotated.resolved.sha, second,
        "an annotated tag resolves to its commit"
    );
    let semver = cache.resolve(&url, None, "^1.0", "").unwrap();
    assert_eq!(
        semver.resolved.ref_name.as_deref(),
        Some("refs/tags/v1.1.0")
    );
    assert_eq!(
        cache.resolve(&url, None, &first, "").unwrap().resolved.kind,
        RevisionKind::Commit
    );
    let short = cache.resolve(&url, None, &first[..8], "").unwrap();
    assert_eq!(short.resolved.sha, first);

    let err = cache.resolve(&url, None, "no-such-branch", "").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{url}: unable to resolve 'no-such-branch' to a commit SHA: revision not found; \
             check that the branch or tag exists in the repository"
        )
    );
}

#[test]
fn smart_http_with_basic_auth() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("private", APP).unwrap();
    let head = repo.git(&["rev-parse", "HEAD"]).unwrap();
    let server = git_http(&fixture, "bot", "s3cret-token").unwrap();
    let url = format!("http://127.0.0.1:{}/git/private.git", server.port);
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = cache(&tmp);

    let rev = cache
        .resolve(&url, Some(&basic("bot", "s3cret-token")), "main", "")
        .unwrap();
    assert_eq!(rev.resolved.sha, head);

    for creds in [Some(basic("bot", "wrong")), None] {
        let err = cache.ls_remote(&url, creds.as_ref()).unwrap_err();
        assert!(matches!(err, Error::Auth { .. }), "{err:?}");
        let text = err.to_string();
        assert_eq!(
            text,
            format!(
                "authentication to {url} failed: check the credentials in the repository Secret for this URL"
            )
        );
        assert!(!text.contains("s3cret") && !text.contains("wrong"));
    }

    // The same repository without authentication, and with `.git` left off:
    // one cache entry for both forms.
    let anon = format!("http://127.0.0.1:{}/anon/private.git", server.port);
    assert_eq!(
        cache.resolve(&anon, None, "main", "").unwrap().resolved.sha,
        head
    );
    let bare = format!("http://127.0.0.1:{}/anon/private", server.port);
    assert_eq!(
        cache.repo_dir(&RepoUrl::parse(&anon).unwrap()),
        cache.repo_dir(&RepoUrl::parse(&bare).unwrap())
    );
}

#[test]
fn ssh_with_a_private_key_and_host_key_checking() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("over-ssh", APP).unwrap();
    let head = repo.git(&["rev-parse", "HEAD"]).unwrap();
    let ssh = git_ssh(&fixture).unwrap();
    let url = ssh.url(&fixture, "over-ssh");
    let creds = Credentials {
        ssh_private_key: Some(SecretString::new(ssh.client_key.clone())),
        ..Default::default()
    };
    let tmp = TempDir::new("berth-cache").unwrap();

    let trusting = RepoCache::new(
        tmp.path().join("a"),
        CacheOptions {
            known_hosts: Some(ssh.known_hosts.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        trusting
            .resolve(&url, Some(&creds), "main", "")
            .unwrap()
            .resolved
            .sha,
        head
    );
    let files = trusting.list_files(&url, &head, "apps/web").unwrap();
    assert_eq!(files.len(), 2);

    // No known host key: refused, and the message says what to do.
    let strict = RepoCache::new(tmp.path().join("b"), CacheOptions::default()).unwrap();
    let err = strict
        .ls_remote(&url, Some(&creds))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Host key verification failed"), "{err}");
    assert!(
        err.contains("add the server's key to the known hosts"),
        "{err}"
    );

    // `insecure` skips host-key checking, as in Argo CD.
    let insecure = Credentials {
        insecure: true,
        ..creds.clone()
    };
    assert_eq!(
        strict
            .resolve(&url, Some(&insecure), "main", "")
            .unwrap()
            .resolved
            .sha,
        head
    );

    // A key the server does not accept.
    let other = berth_testenv::git::git_ssh(&fixture).unwrap();
    let wrong_key = Credentials {
        ssh_private_key: Some(SecretString::new(other.client_key.clone())),
        ..Default::default()
    };
    let err = trusting.ls_remote(&url, Some(&wrong_key)).unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    // No key file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("a/tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().starts_with("key-")),
        "{leftovers:?}"
    );
}

#[test]
fn local_paths_and_file_urls() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("local", APP).unwrap();
    let head = repo.git(&["rev-parse", "HEAD"]).unwrap();
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = cache(&tmp);
    for url in [
        repo.bare.display().to_string(),
        format!("file://{}", repo.bare.display()),
    ] {
        assert_eq!(
            cache.resolve(&url, None, "main", "").unwrap().resolved.sha,
            head,
            "{url}"
        );
    }
}

#[test]
fn force_pushes_and_deleted_branches_are_followed() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("rewrite", APP).unwrap();
    let base = repo.git(&["rev-parse", "HEAD"]).unwrap();
    let old = repo.commit(&[("a.txt", "old")], "old").unwrap();
    repo.push("main").unwrap();
    repo.push("feature").unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/rewrite.git", daemon.port);
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = cache(&tmp);
    assert_eq!(
        cache.resolve(&url, None, "main", "").unwrap().resolved.sha,
        old
    );
    cache.fetch(&url, None).unwrap();

    repo.git(&["reset", "--hard", &base]).unwrap();
    let new = repo.commit(&[("b.txt", "new")], "rewritten").unwrap();
    repo.push("main").unwrap();
    repo.git(&["push", "--quiet", "origin", ":refs/heads/feature"])
        .unwrap();

    let outcome = cache.fetch(&url, None).unwrap();
    assert_eq!(outcome.pruned, ["refs/heads/feature"]);
    assert!(
        outcome.updated.contains(&"refs/heads/main".to_string()),
        "{outcome:?}"
    );
    let rev = cache.resolve(&url, None, "main", "").unwrap();
    assert_eq!(rev.resolved.sha, new, "the force-pushed branch is followed");
    let err = cache.resolve(&url, None, "feature", "").unwrap_err();
    assert!(err.to_string().contains("revision not found"), "{err}");
}

#[test]
fn unreachable_or_deleted_repositories_give_clear_errors() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("gone", APP).unwrap();
    let mut daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/gone.git", daemon.port);
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = cache(&tmp);
    let head = cache.resolve(&url, None, "main", "").unwrap().resolved.sha;

    std::fs::remove_dir_all(&repo.bare).unwrap();
    let err = cache.ls_remote(&url, None).unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!("list refs of {url}")),
        "{err}"
    );

    daemon.stop();
    let err = cache.fetch(&url, None).unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err:?}");
    // What was fetched before stays readable.
    assert_eq!(
        cache.read_file(&url, &head, "README.md").unwrap(),
        b"hello\n"
    );
}

#[test]
fn a_corrupt_cache_entry_is_rebuilt() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("corrupt", APP).unwrap();
    let head = repo.git(&["rev-parse", "HEAD"]).unwrap();
    let url = repo.bare.display().to_string();
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = cache(&tmp);
    cache.fetch(&url, None).unwrap();
    let dir = cache.repo_dir(&RepoUrl::parse(&url).unwrap());

    // A crash mid-update leaves a stale lock file behind.
    std::fs::write(dir.join("refs/heads/main.lock"), "").unwrap();
    let next = repo.commit(&[("x", "1")], "next").unwrap();
    repo.push("main").unwrap();
    assert_eq!(
        cache.resolve(&url, None, "main", "").unwrap().resolved.sha,
        next
    );

    // A half-written entry: the repository's files are garbage.
    std::fs::write(dir.join("HEAD"), "garbage").unwrap();
    std::fs::remove_dir_all(dir.join("objects")).unwrap();
    let rev = cache.resolve(&url, None, &head, "").unwrap();
    assert_eq!(rev.resolved.sha, head);
    assert_eq!(
        cache.read_file(&url, &head, "README.md").unwrap(),
        b"hello\n"
    );
}

#[test]
fn reads_lists_and_materializes_without_a_checkout() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("read", APP).unwrap();
    let work = &repo.work;
    std::os::unix::fs::symlink("deployment.yaml", work.join("apps/web/alias.yaml")).unwrap();
    std::os::unix::fs::symlink("../../../../etc/passwd", work.join("apps/api/escape.yaml"))
        .unwrap();
    std::os::unix::fs::symlink("/dev/zero", work.join("apps/api/device")).unwrap();
    let head = repo.commit(&[], "links").unwrap();
    repo.push("main").unwrap();
    let url = repo.bare.display().to_string();
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = cache(&tmp);
    cache.fetch(&url, None).unwrap();

    let files = cache.list_files(&url, &head, "apps/web").unwrap();
    let names: Vec<_> = files.iter().map(|f| (f.path.as_str(), f.kind)).collect();
    assert_eq!(
        names,
        [
            ("alias.yaml", EntryKind::Symlink),
            ("deployment.yaml", EntryKind::File),
            ("service.yaml", EntryKind::File)
        ]
    );
    assert_eq!(
        cache
            .read_file(&url, &head, "apps/web/service.yaml")
            .unwrap(),
        b"kind: Service\n"
    );

    let dir = cache.materialize(&url, &head, "apps/web").unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("alias.yaml")).unwrap(),
        "kind: Deployment\n"
    );
    // Permission bits, not a write attempt: tests may run as root.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode(&dir.join("service.yaml")),
        0o444,
        "materialized files are read-only"
    );
    assert_eq!(mode(&dir), 0o555, "the directory is read-only");
    assert_eq!(
        cache.materialize(&url, &head, "./apps/web/").unwrap(),
        dir,
        "reused"
    );

    let err = cache
        .materialize(&url, &head, "apps/api")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("symbolic link") && (err.contains("escape.yaml") || err.contains("device")),
        "{err}"
    );
    for bad in ["../outside", "/etc", "apps/../../x"] {
        let err = cache.list_files(&url, &head, bad).unwrap_err();
        assert!(matches!(err, Error::Path { .. }), "{bad}: {err:?}");
    }
    let err = cache
        .read_file(&url, &head, "apps/web/alias.yaml")
        .unwrap_err();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    let err = cache.list_files(&url, &head, "apps/missing").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{url} at {head}: path \"apps/missing\" does not exist")
    );
    assert!(!Path::new("/etc/passwd").starts_with(&dir));
}

#[test]
fn changed_paths_between_commits() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("monorepo", APP).unwrap();
    let from = repo.git(&["rev-parse", "HEAD"]).unwrap();
    std::fs::remove_file(repo.work.join("README.md")).unwrap();
    let to = repo
        .commit(
            &[
                ("apps/api/config.yaml", "kind: ConfigMap\nchanged: true\n"),
                ("apps/new/x.yaml", "x"),
            ],
            "change",
        )
        .unwrap();
    repo.push("main").unwrap();
    let url = repo.bare.display().to_string();
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = cache(&tmp);
    cache.fetch(&url, None).unwrap();
    assert_eq!(
        cache.changed_paths(&url, &from, &to).unwrap(),
        ["README.md", "apps/api/config.yaml", "apps/new/x.yaml"]
    );
    assert!(cache.changed_paths(&url, &to, &to).unwrap().is_empty());
}

#[test]
fn many_callers_share_one_repository_safely() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("shared", APP).unwrap();
    let head = repo.git(&["rev-parse", "HEAD"]).unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/shared.git", daemon.port);
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = std::sync::Arc::new(cache(&tmp));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let cache = cache.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let rev = cache.resolve(&url, None, "main", "").unwrap();
                if i % 2 == 0 {
                    cache.fetch(&url, None).unwrap();
                }
                cache
                    .list_files(&url, &rev.resolved.sha, "apps")
                    .unwrap()
                    .len()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 3);
    }
    assert_eq!(
        cache.resolve(&url, None, "main", "").unwrap().resolved.sha,
        head
    );
}

#[test]
fn https_with_a_private_ca_bearer_tokens_and_client_certificates() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("tls", APP).unwrap();
    let head = repo.git(&["rev-parse", "HEAD"]).unwrap();
    let https = git_https(&fixture, "bot", "pw", "t0ken").unwrap();
    let port = https.server.port;
    let tmp = TempDir::new("berth-cache").unwrap();
    let trusting = RepoCache::new(
        tmp.path().join("trusting"),
        CacheOptions {
            tls_certs: [("127.0.0.1".to_string(), https.ca_pem.clone())].into(),
            ..Default::default()
        },
    )
    .unwrap();
    let plain = RepoCache::new(tmp.path().join("plain"), CacheOptions::default()).unwrap();

    // The server's CA is trusted for its host: basic auth over TLS works.
    let url = format!("https://127.0.0.1:{port}/git/tls.git");
    assert_eq!(
        trusting
            .resolve(&url, Some(&basic("bot", "pw")), "main", "")
            .unwrap()
            .resolved
            .sha,
        head
    );

    // Without that CA the certificate is refused, unless `insecure` is set.
    let anon = format!("https://127.0.0.1:{port}/anon/tls.git");
    let err = plain.ls_remote(&anon, None).unwrap_err().to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let insecure = Credentials {
        insecure: true,
        ..Default::default()
    };
    assert_eq!(
        plain
            .resolve(&anon, Some(&insecure), "main", "")
            .unwrap()
            .resolved
            .sha,
        head
    );

    // Bearer tokens.
    let bearer = format!("https://127.0.0.1:{port}/bearer/tls.git");
    let token = |t: &str| Credentials {
        bearer_token: Some(SecretString::new(t)),
        ..Default::default()
    };
    assert_eq!(
        trusting
            .resolve(&bearer, Some(&token("t0ken")), "main", "")
            .unwrap()
            .resolved
            .sha,
        head
    );
    let err = trusting
        .ls_remote(&bearer, Some(&token("wrong")))
        .unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");

    // Client certificates.
    let mtls = format!("https://127.0.0.1:{}/anon/tls.git", https.mtls_port);
    let cert = Credentials {
        tls_client_cert_data: Some(https.client_cert_pem.clone()),
        tls_client_cert_key: Some(SecretString::new(https.client_key_pem.clone())),
        ..Default::default()
    };
    assert_eq!(
        trusting
            .resolve(&mtls, Some(&cert), "main", "")
            .unwrap()
            .resolved
            .sha,
        head
    );
    assert!(
        trusting.ls_remote(&mtls, None).is_err(),
        "no client certificate, no access"
    );
    let half = Credentials {
        tls_client_cert_data: Some(https.client_cert_pem.clone()),
        ..Default::default()
    };
    let err = trusting
        .ls_remote(&mtls, Some(&half))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tlsClientCertData and tlsClientCertKey must be given together"),
        "{err}"
    );
}

#[test]
fn a_server_dying_mid_fetch_leaves_the_cache_usable() {
    let fixture = GitFixture::new().unwrap();
    // Enough incompressible content that the pack outlasts the cut.
    let big: String = (0..200_000u64)
        .map(|i| format!("{:x}", i.wrapping_mul(0x9E3779B97F4A7C15)))
        .collect();
    let repo = fixture
        .create_repo("midway", &[("small.txt", "1")])
        .unwrap();
    let first = repo.git(&["rev-parse", "HEAD"]).unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let direct = format!("git://127.0.0.1:{}/midway.git", daemon.port);
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = cache(&tmp);
    cache.fetch(&direct, None).unwrap();

    let second = repo.commit(&[("big.txt", &big)], "big").unwrap();
    repo.push("main").unwrap();
    let proxy = berth_testenv::git::CuttingProxy::start(daemon.port, 64 * 1024).unwrap();
    let cut = format!("git://127.0.0.1:{}/midway.git", proxy.port);
    let err = cache.resolve(&cut, None, "main", "").unwrap_err();
    assert!(matches!(err, Error::Remote { .. }), "{err:?}");

    // What was there before is intact, and the next fetch completes.
    assert_eq!(cache.read_file(&direct, &first, "small.txt").unwrap(), b"1");
    let rev = cache.resolve(&direct, None, "main", "").unwrap();
    assert_eq!(rev.resolved.sha, second);
    assert_eq!(
        cache.read_file(&direct, &second, "big.txt").unwrap().len(),
        big.len()
    );
}

/// Several applications share a repository: their threads materialize the
/// same tree at the same moment, and every one gets it whole.
#[test]
fn concurrent_materializations_of_one_tree() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture.create_repo("shared", APP).unwrap();
    let url = repo.bare.display().to_string();
    let tmp = TempDir::new("berth-cache").unwrap();
    let cache = std::sync::Arc::new(cache(&tmp));
    let head = cache.resolve(&url, None, "main", "").unwrap().resolved.sha;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let cache = std::sync::Arc::clone(&cache);
            let (url, head) = (url.clone(), head.clone());
            std::thread::spawn(move || cache.materialize(&url, &head, ""))
        })
        .collect();
    for t in threads {
        let dir = t.join().unwrap().unwrap();
        assert!(dir.join("apps/web/deployment.yaml").is_file());
    }
}
