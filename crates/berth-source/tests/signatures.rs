//! Commit signatures made by the real `gpg` and `ssh-keygen -Y sign` (through
//! `git commit -S`), verified from the repository cache.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::Command;

use berth_source::repo::{CacheOptions, RepoCache};
use berth_source::signature::{Error, SignaturePolicy, verify_commit};
use berth_testenv::git::{GitFixture, TempDir};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A fresh GnuPG home with one ed25519 signing key; returns (key id, armored public key).
fn gpg_key(home: &Path, name: &str) -> (String, String) {
    std::fs::create_dir_all(home).unwrap();
    let gpg = || {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(home).arg("--batch");
        c
    };
    run(gpg().args([
        "--passphrase",
        "",
        "--quick-gen-key",
        &format!("{name} <{name}@berth.invalid>"),
        "ed25519",
        "sign",
        "never",
    ]));
    let listing = run(gpg().args(["--list-keys", "--with-colons"]));
    let key_id = listing
        .lines()
        .find(|l| l.starts_with("pub:"))
        .unwrap()
        .split(':')
        .nth(4)
        .unwrap()
        .to_string();
    let armored = run(gpg().args(["--armor", "--export", &key_id]));
    (key_id, armored)
}

/// Commits in `work` with extra git config and environment.
fn commit(work: &Path, config: &[&str], env: &[(&str, &Path)], message: &str) -> String {
    std::fs::write(work.join(format!("{message}.txt")), message).unwrap();
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.current_dir(work)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1");
        c.env("GIT_AUTHOR_NAME", "Signer")
            .env("GIT_AUTHOR_EMAIL", "signer@berth.invalid");
        c.env("GIT_COMMITTER_NAME", "Signer")
            .env("GIT_COMMITTER_EMAIL", "signer@berth.invalid");
        for (k, v) in env {
            c.env(k, v);
        }
        for kv in config {
            c.arg("-c").arg(kv);
        }
        c.args(args);
        run(&mut c)
    };
    git(&["add", "--all"]);
    git(&["commit", "--quiet", "-m", message]);
    git(&["push", "--quiet", "origin", "HEAD:refs/heads/main"]);
    git(&["rev-parse", "HEAD"]).trim().to_string()
}

#[test]
fn openpgp_signed_commits_are_checked_against_the_project_keys() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo("signed", &[("a.yaml", "a: 1\n")])
        .unwrap();
    let tmp = TempDir::new("berth-sig").unwrap();
    let home = tmp.path().join("gnupg");
    let (key_id, armored) = gpg_key(&home, "release");
    let signed = commit(
        &repo.work,
        &["commit.gpgsign=true", &format!("user.signingkey={key_id}")],
        &[("GNUPGHOME", &home)],
        "signed",
    );
    let cache = RepoCache::new(tmp.path().join("cache"), CacheOptions::default()).unwrap();
    let url = repo.bare.display().to_string();
    let info = cache.resolve(&url, None, "main", "").unwrap().commit;
    assert_eq!(info.sha, signed);
    assert!(
        info.signature
            .as_deref()
            .unwrap()
            .contains("BEGIN PGP SIGNATURE")
    );

    let mut policy = SignaturePolicy {
        allowed_gpg_keys: vec![key_id.clone()],
        ..Default::default()
    };
    policy
        .add_armored_keys("argocd-gpg-keys-cm/release", &armored)
        .unwrap();
    let verified = verify_commit(&info, &policy).unwrap().unwrap();
    assert_eq!(verified.key_id, key_id);
    assert_eq!(verified.signer, "release <release@berth.invalid>");

    // A changed commit no longer matches its signature.
    let mut tampered = info.clone();
    tampered
        .signed_payload
        .as_mut()
        .unwrap()
        .extend_from_slice(b"evil");
    assert!(matches!(
        verify_commit(&tampered, &policy),
        Err(Error::Invalid { .. })
    ));

    // Known key, but the project allows another one.
    let other = SignaturePolicy {
        allowed_gpg_keys: vec!["0123456789ABCDEF".into()],
        keyring: policy.keyring.clone(),
        ..Default::default()
    };
    let err = verify_commit(&info, &other).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "commit {signed} is signed with OpenPGP key {key_id}, which is not among the project's allowed keys"
        )
    );

    // Allowed, but its public key was never imported.
    let no_keyring = SignaturePolicy {
        allowed_gpg_keys: vec![key_id.clone()],
        ..Default::default()
    };
    let err = verify_commit(&info, &no_keyring).unwrap_err();
    assert!(matches!(err, Error::UnknownKey { .. }), "{err:?}");
    assert!(err.to_string().contains(&key_id), "{err}");

    // Signed by a stranger's key.
    let (stranger_id, stranger) = gpg_key(&tmp.path().join("stranger"), "stranger");
    let wrong = commit(
        &repo.work,
        &[
            "commit.gpgsign=true",
            &format!("user.signingkey={stranger_id}"),
        ],
        &[("GNUPGHOME", &tmp.path().join("stranger"))],
        "stranger",
    );
    let info = cache.resolve(&url, None, &wrong, "").unwrap().commit;
    let err = verify_commit(&info, &policy).unwrap_err();
    assert!(matches!(err, Error::UnknownKey { .. }), "{err:?}");
    let mut both = policy.clone();
    both.add_armored_keys("stranger", &stranger).unwrap();
    assert!(matches!(
        verify_commit(&info, &both),
        Err(Error::NotAllowed { .. })
    ));

    // Unsigned.
    let plain = commit(&repo.work, &[], &[], "plain");
    let info = cache.resolve(&url, None, &plain, "").unwrap().commit;
    assert!(matches!(
        verify_commit(&info, &policy),
        Err(Error::Unsigned { .. })
    ));
}

#[test]
fn ssh_signed_commits_are_checked_against_allowed_signers() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo("ssh-signed", &[("a.yaml", "a: 1\n")])
        .unwrap();
    let tmp = TempDir::new("berth-sshsig").unwrap();
    let key = tmp.path().join("signer");
    run(Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "dev@berth.invalid",
            "-f",
        ])
        .arg(&key));
    let signed = commit(
        &repo.work,
        &[
            "gpg.format=ssh",
            &format!("user.signingkey={}.pub", key.display()),
            "commit.gpgsign=true",
        ],
        &[],
        "ssh-signed",
    );
    let cache = RepoCache::new(tmp.path().join("cache"), CacheOptions::default()).unwrap();
    let url = repo.bare.display().to_string();
    let info = cache.resolve(&url, None, "main", "").unwrap().commit;
    assert_eq!(info.sha, signed);

    let public = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
    let mut policy = SignaturePolicy::default();
    policy
        .add_allowed_signers(
            "allowed_signers",
            &format!("# team\ndev@berth.invalid namespaces=\"git\" {public}"),
        )
        .unwrap();
    let verified = verify_commit(&info, &policy).unwrap().unwrap();
    assert_eq!(verified.kind, "SSH");
    assert_eq!(verified.signer, "dev@berth.invalid");
    assert!(
        verified.key_id.starts_with("SHA256:"),
        "{}",
        verified.key_id
    );

    let mut tampered = info.clone();
    tampered.signed_payload.as_mut().unwrap().push(b'x');
    assert!(matches!(
        verify_commit(&tampered, &policy),
        Err(Error::Invalid { .. })
    ));

    let other = tmp.path().join("other");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other));
    let mut strangers = SignaturePolicy::default();
    strangers
        .add_allowed_signers(
            "allowed_signers",
            &format!(
                "x@y {}",
                std::fs::read_to_string(format!("{}.pub", other.display())).unwrap()
            ),
        )
        .unwrap();
    let err = verify_commit(&info, &strangers).unwrap_err();
    assert!(
        err.to_string().contains(&verified.key_id),
        "names the signing key: {err}"
    );
}

#[test]
fn a_signed_annotated_tag_decides_for_tag_revisions() {
    use berth_source::signature::verify_revision;
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo("tags", &[("a.yaml", "a: 1\n")])
        .unwrap();
    let tmp = TempDir::new("berth-tagsig").unwrap();
    let home = tmp.path().join("gnupg");
    let (key_id, armored) = gpg_key(&home, "release");
    let mut policy = SignaturePolicy {
        allowed_gpg_keys: vec![key_id.clone()],
        ..Default::default()
    };
    policy.add_armored_keys("release", &armored).unwrap();

    // An unsigned commit, released under a signed tag.
    let unsigned = commit(&repo.work, &[], &[], "release-1");
    let tag = |args: &[&str]| {
        let mut c = Command::new("git");
        c.current_dir(&repo.work)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GNUPGHOME", &home);
        c.env("GIT_COMMITTER_NAME", "Signer")
            .env("GIT_COMMITTER_EMAIL", "signer@berth.invalid");
        c.args(["-c", &format!("user.signingkey={key_id}")])
            .args(args);
        run(&mut c);
    };
    tag(&["tag", "-s", "v1.0.0", "-m", "release 1.0.0"]);
    tag(&["tag", "-a", "v1.0.1", "-m", "unsigned annotated"]);
    tag(&["tag", "v1.0.2"]);
    tag(&["push", "--quiet", "origin", "--tags"]);

    let cache = RepoCache::new(tmp.path().join("cache"), CacheOptions::default()).unwrap();
    let url = repo.bare.display().to_string();
    let signed = cache.resolve(&url, None, "v1.0.0", "").unwrap();
    assert_eq!(signed.commit.sha, unsigned);
    let tag_info = signed.tag.as_ref().expect("an annotated tag");
    assert!(
        tag_info
            .signature
            .as_deref()
            .unwrap()
            .contains("BEGIN PGP SIGNATURE")
    );
    let verified = verify_revision(&signed.commit, signed.tag.as_ref(), &policy)
        .unwrap()
        .unwrap();
    assert_eq!(verified.key_id, key_id);
    assert!(
        verify_commit(&signed.commit, &policy).is_err(),
        "the commit itself is unsigned"
    );

    // A tampered tag payload fails.
    let mut bad = tag_info.clone();
    bad.signed_payload.as_mut().unwrap().extend_from_slice(b"x");
    assert!(matches!(
        verify_revision(&signed.commit, Some(&bad), &policy),
        Err(Error::Invalid { .. })
    ));

    // Unsigned annotated and lightweight tags: the commit decides, and it is unsigned.
    for name in ["v1.0.1", "v1.0.2"] {
        let rev = cache.resolve(&url, None, name, "").unwrap();
        let err = verify_revision(&rev.commit, rev.tag.as_ref(), &policy).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("commit {unsigned} is not signed, and the project requires signed commits")
        );
    }
    assert!(
        cache
            .resolve(&url, None, "v1.0.2", "")
            .unwrap()
            .tag
            .is_none(),
        "lightweight tags have no tag object"
    );
    // The semver path keeps the tag too.
    let by_range = cache.resolve(&url, None, "~1.0.0 <1.0.1", "").unwrap();
    assert_eq!(
        by_range.tag.as_ref().map(|t| t.name.as_str()),
        Some("v1.0.0")
    );
}
