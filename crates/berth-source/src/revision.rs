//! Resolving an Application's `targetRevision` against a repository's refs.
//!
//! Argo CD's rules, made deterministic:
//!
//! 1. An empty revision means `HEAD`.
//! 2. A 40-hex-digit revision is a commit SHA, used as is.
//! 3. A revision that parses as a plain version (`v1.2.3`, `1.2`) is a tag
//!    name, never a range. Otherwise, if it parses as a constraint
//!    (`>=1.0.0 <2.0.0`, `~1.4`, `^2`, `1.2.*`), it selects the highest tag
//!    whose name (after the optional tag prefix) is a version satisfying it.
//! 4. A name is looked up among the refs: a full ref name (`refs/heads/x`)
//!    only matches itself; a short name matches, in git's own order of
//!    precedence, the tag `refs/tags/NAME`, then the branch
//!    `refs/heads/NAME` (Argo CD leaves this order to chance); `HEAD` matches
//!    the remote's HEAD.
//! 5. Annotated tags resolve to the commit they point to.
//! 6. Anything else of 7 to 39 hex digits is an abbreviated commit SHA, which
//!    must be looked up in the repository's objects after a fetch.

use crate::semver::{Constraint, Version};

/// One ref advertised by a remote (what `git ls-remote` prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// Full ref name, such as `refs/heads/main`, `refs/tags/v1.0.0`, `HEAD`.
    pub name: String,
    /// The object the ref points to (a tag object for annotated tags).
    pub target: String,
    /// For annotated tags: the commit the tag points to.
    pub peeled: Option<String>,
    /// For symbolic refs (HEAD): the ref it points to.
    pub symref_target: Option<String>,
}

impl RemoteRef {
    /// The commit this ref designates: the peeled object for annotated tags.
    pub fn commit(&self) -> &str {
        self.peeled.as_deref().unwrap_or(&self.target)
    }
}

/// What kind of revision was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevisionKind {
    /// The remote's default branch.
    Head,
    /// A branch.
    Branch,
    /// A tag, named directly.
    Tag,
    /// A tag selected by a semantic-version constraint.
    Semver {
        /// The constraint as written.
        constraint: String,
    },
    /// A full commit SHA.
    Commit,
}

/// A resolved revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The commit SHA (40 hex digits).
    pub sha: String,
    /// The full ref name it was found under, if any.
    pub ref_name: Option<String>,
    /// How it was found.
    pub kind: RevisionKind,
}

/// The outcome of resolving a revision against the advertised refs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Resolved to a commit.
    Resolved(Resolved),
    /// An abbreviated SHA, to be expanded from the repository's objects.
    ShortSha(String),
}

/// Why a revision could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No ref, tag or commit matched.
    #[error(
        "unable to resolve '{revision}' to a commit SHA: revision not found; \
         check that the branch or tag exists in the repository"
    )]
    NotFound {
        /// The revision asked for.
        revision: String,
    },
    /// A semantic-version constraint matched no tag.
    #[error(
        "unable to resolve '{revision}' to a commit SHA: no tag satisfies the version \
         constraint ({tags} tags are versions{prefix_note})"
    )]
    NoMatchingTag {
        /// The constraint asked for.
        revision: String,
        /// How many tags parsed as versions.
        tags: usize,
        /// A note on the tag prefix, if one was set.
        prefix_note: String,
    },
}

/// Whether `s` is a full (40 hex digits) commit SHA.
pub fn is_full_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_short_sha(s: &str) -> bool {
    (7..40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Resolves `revision` against `refs`; `tag_prefix` (may be empty) is
/// stripped from tag names before they are read as versions.
pub fn resolve(revision: &str, refs: &[RemoteRef], tag_prefix: &str) -> Result<Resolution, Error> {
    let revision = revision.trim();
    let revision = if revision.is_empty() {
        "HEAD"
    } else {
        revision
    };
    if is_full_sha(revision) {
        return Ok(Resolution::Resolved(Resolved {
            sha: revision.to_ascii_lowercase(),
            ref_name: None,
            kind: RevisionKind::Commit,
        }));
    }
    if revision != "HEAD"
        && !revision.starts_with("refs/")
        && Version::parse(revision).is_err()
        && !is_plain_name(refs, revision)
        && let Ok(constraint) = Constraint::parse(revision)
    {
        return resolve_semver(revision, &constraint, refs, tag_prefix);
    }
    if let Some(found) = find_ref(revision, refs) {
        return Ok(Resolution::Resolved(found));
    }
    if is_short_sha(revision) {
        return Ok(Resolution::ShortSha(revision.to_ascii_lowercase()));
    }
    Err(Error::NotFound {
        revision: revision.to_string(),
    })
}

/// A ref named exactly like the revision wins over reading it as a
/// constraint: a branch called `1.x` or `release-*` stays a branch.
fn is_plain_name(refs: &[RemoteRef], revision: &str) -> bool {
    refs.iter().any(|r| {
        r.name.strip_prefix("refs/heads/") == Some(revision)
            || r.name.strip_prefix("refs/tags/") == Some(revision)
    })
}

fn find_ref(revision: &str, refs: &[RemoteRef]) -> Option<Resolved> {
    if revision == "HEAD" {
        let head = refs.iter().find(|r| r.name == "HEAD")?;
        return Some(Resolved {
            sha: head.commit().to_string(),
            ref_name: head.symref_target.clone().or(Some("HEAD".into())),
            kind: RevisionKind::Head,
        });
    }
    let candidates: Vec<String> = if revision.starts_with("refs/") {
        vec![revision.to_string()]
    } else {
        vec![
            format!("refs/tags/{revision}"),
            format!("refs/heads/{revision}"),
        ]
    };
    for name in candidates {
        if let Some(r) = refs.iter().find(|r| r.name == name) {
            let kind = if name.starts_with("refs/tags/") {
                RevisionKind::Tag
            } else if name.starts_with("refs/heads/") {
                RevisionKind::Branch
            } else {
                RevisionKind::Commit
            };
            return Some(Resolved {
                sha: r.commit().to_string(),
                ref_name: Some(name),
                kind,
            });
        }
    }
    None
}

fn resolve_semver(
    revision: &str,
    constraint: &Constraint,
    refs: &[RemoteRef],
    tag_prefix: &str,
) -> Result<Resolution, Error> {
    let mut best: Option<(Version, &RemoteRef)> = None;
    let mut versions = 0;
    for r in refs {
        let Some(tag) = r.name.strip_prefix("refs/tags/") else {
            continue;
        };
        let Some(tag) = tag.strip_prefix(tag_prefix) else {
            continue;
        };
        let Ok(version) = Version::parse(tag) else {
            continue;
        };
        versions += 1;
        if !constraint.matches(&version) {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| version > *b) {
            best = Some((version, r));
        }
    }
    match best {
        Some((_, r)) => Ok(Resolution::Resolved(Resolved {
            sha: r.commit().to_string(),
            ref_name: Some(r.name.clone()),
            kind: RevisionKind::Semver {
                constraint: revision.to_string(),
            },
        })),
        None => Err(Error::NoMatchingTag {
            revision: revision.to_string(),
            tags: versions,
            prefix_note: if tag_prefix.is_empty() {
                String::new()
            } else {
                format!(" after removing the prefix '{tag_prefix}'")
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> String {
        format!("{n:02x}").repeat(20)
    }

    fn refs() -> Vec<RemoteRef> {
        let r = |name: &str, n: u8| RemoteRef {
            name: name.into(),
            target: sha(n),
            peeled: None,
            symref_target: None,
        };
        vec![
            RemoteRef {
                symref_target: Some("refs/heads/main".into()),
                ..r("HEAD", 1)
            },
            r("refs/heads/main", 1),
            r("refs/heads/release-1.x", 2),
            r("refs/heads/1.x", 3),
            r("refs/tags/v1.0.0", 10),
            // Annotated: target is the tag object, peeled the commit.
            RemoteRef {
                peeled: Some(sha(11)),
                ..r("refs/tags/v1.2.0", 99)
            },
            r("refs/tags/v1.10.0", 12),
            r("refs/tags/v2.0.0-rc.1", 13),
            r("refs/tags/v2.0.0", 14),
            r("refs/tags/1.2", 15),
            r("refs/tags/app-v3.1.0", 16),
            r("refs/tags/dup", 17),
            r("refs/heads/dup", 18),
            r("refs/tags/not-a-version", 19),
        ]
    }

    fn ok(rev: &str) -> Resolved {
        match resolve(rev, &refs(), "").unwrap() {
            Resolution::Resolved(r) => r,
            other => panic!("{rev}: {other:?}"),
        }
    }

    #[test]
    fn head_and_empty_resolve_to_the_default_branch() {
        for rev in ["", "HEAD", "  "] {
            let r = ok(rev);
            assert_eq!(r.sha, sha(1));
            assert_eq!(r.kind, RevisionKind::Head);
            assert_eq!(r.ref_name.as_deref(), Some("refs/heads/main"));
        }
    }

    #[test]
    fn branches_and_tags_by_short_and_full_name() {
        assert_eq!(ok("main").kind, RevisionKind::Branch);
        assert_eq!(ok("release-1.x").sha, sha(2));
        assert_eq!(ok("refs/heads/main").sha, sha(1));
        assert_eq!(ok("v1.0.0").sha, sha(10));
        assert_eq!(ok("v1.0.0").kind, RevisionKind::Tag);
        assert_eq!(ok("refs/tags/v1.0.0").sha, sha(10));
        assert!(
            resolve("refs/heads/v1.0.0", &refs(), "").is_err(),
            "a full name matches only itself"
        );
    }

    #[test]
    fn annotated_tags_resolve_to_their_commit() {
        assert_eq!(ok("v1.2.0").sha, sha(11));
    }

    #[test]
    fn a_tag_beats_a_branch_of_the_same_name_as_in_git() {
        let r = ok("dup");
        assert_eq!(r.sha, sha(17));
        assert_eq!(r.ref_name.as_deref(), Some("refs/tags/dup"));
        assert_eq!(ok("refs/heads/dup").sha, sha(18));
    }

    #[test]
    fn plain_versions_are_tag_names_not_ranges() {
        // `1.2` is the tag named 1.2, not `>=1.2.0 <1.3.0`.
        assert_eq!(ok("1.2").sha, sha(15));
        assert!(matches!(
            resolve("1.3", &refs(), ""),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn a_ref_named_like_a_constraint_stays_a_ref() {
        assert_eq!(ok("1.x").sha, sha(3));
        assert_eq!(ok("1.x").kind, RevisionKind::Branch);
    }

    #[test]
    fn constraints_pick_the_highest_matching_tag() {
        let cases = [
            ("1.*", 12),
            (">=1.0.0 <2.0.0", 12),
            ("~1.2", 11),
            ("^1", 12),
            ("^2", 14),
            (">=2.0.0-0", 14),
            ("<2.0.0-0 >=2.0.0-0 || ~2.0.0-rc.0", 14),
            ("*", 14),
        ];
        for (constraint, want) in cases {
            let r = ok(constraint);
            assert_eq!(r.sha, sha(want), "{constraint}");
            assert_eq!(
                r.kind,
                RevisionKind::Semver {
                    constraint: constraint.into()
                }
            );
        }
        assert_eq!(
            ok("^1").ref_name.as_deref(),
            Some("refs/tags/v1.10.0"),
            "1.10 > 1.2 numerically"
        );
    }

    #[test]
    fn tag_prefix_is_stripped_before_matching() {
        match resolve("^3", &refs(), "app-").unwrap() {
            Resolution::Resolved(r) => assert_eq!(r.sha, sha(16)),
            other => panic!("{other:?}"),
        }
        let err = resolve("^9", &refs(), "app-").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to resolve '^9' to a commit SHA: no tag satisfies the version constraint \
             (1 tags are versions after removing the prefix 'app-')"
        );
    }

    #[test]
    fn full_and_short_shas() {
        let full = "ABCDEF0123456789abcdef0123456789abcdef01";
        assert_eq!(ok(full).sha, full.to_ascii_lowercase());
        assert_eq!(ok(full).kind, RevisionKind::Commit);
        assert_eq!(
            resolve("abc1234", &refs(), "").unwrap(),
            Resolution::ShortSha("abc1234".into())
        );
    }

    #[test]
    fn unknown_revisions_are_clear_errors() {
        let err = resolve("no-such-branch", &refs(), "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to resolve 'no-such-branch' to a commit SHA: revision not found; \
             check that the branch or tag exists in the repository"
        );
        assert!(matches!(
            resolve(">=5.0.0", &refs(), ""),
            Err(Error::NoMatchingTag { tags: 6, .. })
        ));
    }
}
