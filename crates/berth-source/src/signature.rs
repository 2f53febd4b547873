//! Commit signature verification: OpenPGP signatures checked against the
//! keys an AppProject trusts (Argo CD's `signatureKeys`, with the public keys
//! from Argo CD's `argocd-gpg-keys-cm`), and, as a Berth extension, SSH
//! signatures checked against a list of allowed signers.
//!
//! A commit is accepted only when its signature verifies with a known key
//! that the policy allows; everything else is refused with a reason that
//! names the commit and the key.

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

use crate::repo::{CommitInfo, TagInfo};

/// Why a commit is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The commit carries no signature.
    #[error("{object} is not signed, and the project requires signed commits")]
    Unsigned {
        /// What was checked: `commit SHA` or `tag NAME (SHA)`.
        object: String,
    },
    /// Signed by a key that is not in the keyring.
    #[error(
        "{object} is signed with {kind} key {key_id}, which is not a known key; import its public key"
    )]
    UnknownKey {
        /// What was checked: `commit SHA` or `tag NAME (SHA)`.
        object: String,
        /// OpenPGP or SSH.
        kind: &'static str,
        /// The key ID (OpenPGP) or fingerprint (SSH).
        key_id: String,
    },
    /// Signed by a known key that the project does not allow.
    #[error(
        "{object} is signed with {kind} key {key_id}, which is not among the project's allowed keys"
    )]
    NotAllowed {
        /// What was checked: `commit SHA` or `tag NAME (SHA)`.
        object: String,
        /// OpenPGP or SSH.
        kind: &'static str,
        /// The key ID or fingerprint.
        key_id: String,
    },
    /// The signature does not verify (the commit was changed, or the
    /// signature is malformed).
    #[error("{object} has an invalid {kind} signature (key {key_id}): {reason}")]
    Invalid {
        /// What was checked: `commit SHA` or `tag NAME (SHA)`.
        object: String,
        /// OpenPGP or SSH.
        kind: &'static str,
        /// The key ID or fingerprint, or `unknown`.
        key_id: String,
        /// What failed.
        reason: String,
    },
    /// A configured key could not be read.
    #[error("signature key {name}: {reason}")]
    BadKey {
        /// Where the key came from.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// An SSH key allowed to sign commits (the format of `ssh-keygen`'s
/// allowed-signers file: `principal key-type base64 [comment]`).
#[derive(Debug, Clone)]
pub struct AllowedSigner {
    /// Who the key belongs to (an email, usually).
    pub principal: String,
    /// The key.
    pub key: ssh_key::PublicKey,
}

/// What a project trusts.
#[derive(Debug, Clone, Default)]
pub struct SignaturePolicy {
    /// OpenPGP key IDs allowed to sign (Argo CD's `signatureKeys[].keyID`):
    /// 16 hex digits, or a full fingerprint.
    pub allowed_gpg_keys: Vec<String>,
    /// Public keys that may be used to verify (the keyring).
    pub keyring: Vec<SignedPublicKey>,
    /// SSH keys allowed to sign (Berth extension).
    pub ssh_allowed_signers: Vec<AllowedSigner>,
}

impl SignaturePolicy {
    /// Whether the policy asks for signatures at all.
    pub fn requires_signatures(&self) -> bool {
        !self.allowed_gpg_keys.is_empty() || !self.ssh_allowed_signers.is_empty()
    }

    /// Adds ASCII-armored public keys (one block or several) to the keyring.
    pub fn add_armored_keys(&mut self, name: &str, armored: &str) -> Result<(), Error> {
        let bad = |reason: String| Error::BadKey {
            name: name.to_string(),
            reason,
        };
        let (keys, _) =
            SignedPublicKey::from_string_many(armored).map_err(|e| bad(e.to_string()))?;
        let mut added = 0;
        for key in keys {
            self.keyring.push(key.map_err(|e| bad(e.to_string()))?);
            added += 1;
        }
        if added == 0 {
            return Err(bad("no public key found".into()));
        }
        Ok(())
    }

    /// Reads an allowed-signers file (`principal key-type base64 [comment]`
    /// per line; `#` comments and blank lines ignored; options such as
    /// `namespaces="git"` before the key type are accepted and ignored).
    pub fn add_allowed_signers(&mut self, name: &str, text: &str) -> Result<(), Error> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| Error::BadKey {
                name: format!("{name} line {}", n + 1),
                reason: reason.to_string(),
            };
            let mut words = line.split_whitespace();
            let principal = words.next().ok_or_else(|| bad("empty line"))?.to_string();
            let rest: Vec<&str> = words.collect();
            let start = rest
                .iter()
                .position(|w| {
                    w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-")
                })
                .ok_or_else(|| bad("no key type (ssh-ed25519, ssh-rsa, ecdsa-...)"))?;
            let key_text = rest[start..].join(" ");
            let key =
                ssh_key::PublicKey::from_openssh(&key_text).map_err(|e| bad(&e.to_string()))?;
            self.ssh_allowed_signers
                .push(AllowedSigner { principal, key });
        }
        Ok(())
    }
}

/// A verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// `OpenPGP` or `SSH`.
    pub kind: &'static str,
    /// The key ID (OpenPGP, of the primary key) or SHA256 fingerprint (SSH).
    pub key_id: String,
    /// The key's user ID (OpenPGP) or principal (SSH), for display.
    pub signer: String,
}

/// Checks a commit against the policy. With a policy that requires nothing,
/// every commit passes (`Ok(None)`).
pub fn verify_commit(
    commit: &CommitInfo,
    policy: &SignaturePolicy,
) -> Result<Option<Verified>, Error> {
    if !policy.requires_signatures() {
        return Ok(None);
    }
    let object = format!("commit {}", commit.sha);
    verify_signed(
        &object,
        commit.signature.as_deref(),
        commit.signed_payload.as_deref(),
        policy,
    )
    .map(Some)
}

/// Checks the revision an application runs. When it was reached through a
/// signed annotated tag, the tag's signature decides (as Argo CD verifies a
/// tag when the revision is a tag); otherwise (a branch, a commit, a
/// lightweight or unsigned tag) the commit's signature does.
pub fn verify_revision(
    commit: &CommitInfo,
    tag: Option<&TagInfo>,
    policy: &SignaturePolicy,
) -> Result<Option<Verified>, Error> {
    if !policy.requires_signatures() {
        return Ok(None);
    }
    match tag {
        Some(tag) if tag.signature.is_some() => {
            let object = format!("tag {} ({})", tag.name, tag.sha);
            verify_signed(
                &object,
                tag.signature.as_deref(),
                tag.signed_payload.as_deref(),
                policy,
            )
            .map(Some)
        }
        _ => verify_commit(commit, policy),
    }
}

fn verify_signed(
    object: &str,
    signature: Option<&str>,
    payload: Option<&[u8]>,
    policy: &SignaturePolicy,
) -> Result<Verified, Error> {
    let (Some(signature), Some(payload)) = (signature, payload) else {
        return Err(Error::Unsigned {
            object: object.to_string(),
        });
    };
    if signature.contains("BEGIN SSH SIGNATURE") {
        verify_ssh(object, signature, payload, policy)
    } else {
        verify_pgp(object, signature, payload, policy)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Matches a configured key ID against a key: 16-hex key IDs and full
/// fingerprints both work, in any case.
fn id_matches(configured: &str, key_id: &str, fingerprint: &str) -> bool {
    let c = configured
        .trim()
        .trim_start_matches("0x")
        .replace(' ', "")
        .to_ascii_uppercase();
    !c.is_empty()
        && (c == key_id || c == fingerprint || (c.len() >= 8 && fingerprint.ends_with(&c)))
}

fn verify_pgp(
    object: &str,
    armored: &str,
    payload: &[u8],
    policy: &SignaturePolicy,
) -> Result<Verified, Error> {
    let kind = "OpenPGP";
    let invalid = |key_id: &str, reason: String| Error::Invalid {
        object: object.to_string(),
        kind,
        key_id: key_id.to_string(),
        reason,
    };
    let (sig, _) =
        DetachedSignature::from_string(armored).map_err(|e| invalid("unknown", e.to_string()))?;
    let issuers: Vec<String> = sig
        .signature
        .issuer_key_id()
        .iter()
        .map(|k| hex(k.as_ref()))
        .collect();
    let issuer_fprs: Vec<String> = sig
        .signature
        .issuer_fingerprint()
        .iter()
        .map(|f| format!("{f:X}"))
        .collect();
    let shown = issuers
        .first()
        .cloned()
        .or_else(|| issuer_fprs.first().cloned())
        .unwrap_or_else(|| "unknown".into());

    for key in &policy.keyring {
        let primary_id = hex(key.primary_key.legacy_key_id().as_ref());
        let primary_fpr = format!("{:X}", key.primary_key.fingerprint());
        let signer = key
            .details
            .users
            .first()
            .map(|u| String::from_utf8_lossy(u.id.id()).to_string())
            .unwrap_or_default();
        let is_issuer = |id: &str, fpr: &str| {
            issuers.iter().any(|i| i == id) || issuer_fprs.iter().any(|f| f == fpr)
        };
        // The primary key, or one of its subkeys, may have signed.
        let mut candidates: Vec<(String, String, Result<(), String>)> = Vec::new();
        if is_issuer(&primary_id, &primary_fpr) {
            candidates.push((
                primary_id.clone(),
                primary_fpr.clone(),
                sig.verify(&key.primary_key, payload)
                    .map_err(|e| e.to_string()),
            ));
        }
        for sub in &key.public_subkeys {
            let id = hex(sub.key.legacy_key_id().as_ref());
            let fpr = format!("{:X}", sub.key.fingerprint());
            if is_issuer(&id, &fpr) {
                candidates.push((
                    id,
                    fpr,
                    sig.verify(&sub.key, payload).map_err(|e| e.to_string()),
                ));
            }
        }
        let mut failure = None;
        for (id, fpr, result) in candidates {
            if let Err(reason) = result {
                failure = Some(invalid(&id, reason));
                continue;
            }
            let allowed = policy
                .allowed_gpg_keys
                .iter()
                .any(|a| id_matches(a, &primary_id, &primary_fpr) || id_matches(a, &id, &fpr));
            if !allowed {
                return Err(Error::NotAllowed {
                    object: object.to_string(),
                    kind,
                    key_id: primary_id,
                });
            }
            return Ok(Verified {
                kind,
                key_id: primary_id,
                signer,
            });
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
    }
    Err(Error::UnknownKey {
        object: object.to_string(),
        kind,
        key_id: shown,
    })
}

fn verify_ssh(
    object: &str,
    armored: &str,
    payload: &[u8],
    policy: &SignaturePolicy,
) -> Result<Verified, Error> {
    let kind = "SSH";
    let sig = ssh_key::SshSig::from_pem(armored).map_err(|e| Error::Invalid {
        object: object.to_string(),
        kind,
        key_id: "unknown".into(),
        reason: e.to_string(),
    })?;
    let fingerprint = sig
        .public_key()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string();
    let Some(signer) = policy
        .ssh_allowed_signers
        .iter()
        .find(|s| s.key.key_data() == sig.public_key())
    else {
        return Err(Error::NotAllowed {
            object: object.to_string(),
            kind,
            key_id: fingerprint,
        });
    };
    if sig.namespace() != "git" {
        return Err(Error::Invalid {
            object: object.to_string(),
            kind,
            key_id: fingerprint,
            reason: format!("signed for namespace {:?}, not \"git\"", sig.namespace()),
        });
    }
    signer
        .key
        .verify("git", payload, &sig)
        .map_err(|e| Error::Invalid {
            object: object.to_string(),
            kind,
            key_id: fingerprint.clone(),
            reason: e.to_string(),
        })?;
    Ok(Verified {
        kind,
        key_id: fingerprint,
        signer: signer.principal.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(sig: Option<&str>) -> CommitInfo {
        CommitInfo {
            sha: "a".repeat(40),
            author: String::new(),
            committer: String::new(),
            time: 0,
            message: String::new(),
            signature: sig.map(str::to_string),
            signed_payload: sig.map(|_| b"payload".to_vec()),
        }
    }

    #[test]
    fn no_policy_accepts_everything() {
        assert_eq!(
            verify_commit(&commit(None), &SignaturePolicy::default()),
            Ok(None)
        );
    }

    #[test]
    fn unsigned_commits_are_refused_when_keys_are_required() {
        let policy = SignaturePolicy {
            allowed_gpg_keys: vec!["4AEE18F83AFDEB23".into()],
            ..Default::default()
        };
        let err = verify_commit(&commit(None), &policy).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "commit {} is not signed, and the project requires signed commits",
                "a".repeat(40)
            )
        );
    }

    #[test]
    fn garbage_signatures_are_invalid_not_panics() {
        let policy = SignaturePolicy {
            allowed_gpg_keys: vec!["4AEE18F83AFDEB23".into()],
            ..Default::default()
        };
        let err = verify_commit(
            &commit(Some(
                "-----BEGIN PGP SIGNATURE-----\n\nnot base64\n-----END PGP SIGNATURE-----\n",
            )),
            &policy,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        let mut ssh_policy = SignaturePolicy::default();
        ssh_policy
            .add_allowed_signers("test", "dev@example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZ4Vn3vUd8Lr0Xo1m6L1N9h5Xqv7tQfQ8oJbQ2D5pPm dev")
            .unwrap();
        let err = verify_commit(
            &commit(Some(
                "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
            )),
            &ssh_policy,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    }

    #[test]
    fn key_ids_match_ids_and_fingerprints() {
        let fpr = "0123456789ABCDEF0123456789ABCDEF4AEE18F8";
        assert!(id_matches("4aee18f8", "89ABCDEF4AEE18F8", fpr));
        assert!(id_matches("89abcdef4aee18f8", "89ABCDEF4AEE18F8", fpr));
        assert!(id_matches(fpr, "89ABCDEF4AEE18F8", fpr));
        assert!(!id_matches("", "89ABCDEF4AEE18F8", fpr));
        assert!(!id_matches("FFFF", "89ABCDEF4AEE18F8", fpr));
    }

    #[test]
    fn bad_allowed_signers_lines_name_the_line() {
        let mut policy = SignaturePolicy::default();
        let err = policy
            .add_allowed_signers("signers", "# ok\n\nalice\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "signature key signers line 3: empty line".replace(
                "empty line",
                "no key type (ssh-ed25519, ssh-rsa, ecdsa-...)"
            )
        );
    }
}
