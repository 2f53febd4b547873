//! AppProject rules checked before anything is rendered or applied: which
//! repositories an application may take its sources from, and which
//! destinations (cluster and namespace) it may deploy to. Patterns are
//! globs (`*`, `?`); a pattern starting with `!` denies, and a denial wins
//! over any permission, as in Argo CD.

pub use berth_engine::glob::glob;
use serde_json::Value;

/// The cluster the controller runs in, by URL and by Argo CD's name.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// The in-cluster cluster's name.
pub const IN_CLUSTER_NAME: &str = "in-cluster";

/// Whether `value` is allowed by a list of patterns with `!` denials.
fn permitted<'a>(patterns: impl IntoIterator<Item = &'a str>, value: &str) -> bool {
    let mut allowed = false;
    for p in patterns {
        match p.strip_prefix('!') {
            Some(deny) if glob(deny, value) => return false,
            Some(_) => {}
            None if glob(p, value) => allowed = true,
            None => {}
        }
    }
    allowed
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// An Application outside the control namespace belongs to its project
/// only when the project's `sourceNamespaces` names that namespace (globs,
/// `!` denials), as in Argo CD: otherwise anyone who may write
/// Applications in some namespace could deploy with any project's rights.
pub fn source_namespace(
    app: &Value,
    control_namespace: &str,
    project_name: &str,
    project: &Value,
) -> Result<(), String> {
    let namespace = app
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(control_namespace);
    if namespace == control_namespace {
        return Ok(());
    }
    let allowed = strings(project.get("sourceNamespaces"));
    if permitted(allowed.iter().map(String::as_str), namespace) {
        return Ok(());
    }
    Err(format!(
        "metadata.namespace: Applications in namespace {namespace:?} are not permitted in project {project_name:?}: add {namespace:?} to the project's spec.sourceNamespaces, or create the Application in {control_namespace:?}"
    ))
}

/// Checks an Application (as stored) against its AppProject's `spec`;
/// the error names the field and the project, for an `InvalidSpecError`
/// condition.
pub fn check(app: &Value, project_name: &str, project: &Value) -> Result<(), String> {
    let repos = strings(project.get("sourceRepos"));
    let sources: Vec<&Value> = match app.pointer("/spec/source") {
        Some(s) if s.is_object() => vec![s],
        _ => app
            .pointer("/spec/sources")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
    };
    for (i, s) in sources.iter().enumerate() {
        let url = text(s, "repoURL");
        let normalized = url.trim_end_matches('/').trim_end_matches(".git");
        let ok = permitted(repos.iter().map(String::as_str), url)
            || permitted(repos.iter().map(String::as_str), normalized);
        if !ok {
            let field = if sources.len() == 1 && app.pointer("/spec/source").is_some() {
                "spec.source.repoURL".to_string()
            } else {
                format!("spec.sources[{i}].repoURL")
            };
            return Err(format!(
                "{field}: repository {url} is not permitted in project {project_name:?} (its sourceRepos)"
            ));
        }
    }

    let dest = app
        .pointer("/spec/destination")
        .cloned()
        .unwrap_or(Value::Null);
    let (server, name, namespace) = (
        text(&dest, "server"),
        text(&dest, "name"),
        text(&dest, "namespace"),
    );
    // The in-cluster destination answers to both its URL and its name.
    let (server, name) = match (server, name) {
        ("", IN_CLUSTER_NAME) => (IN_CLUSTER_SERVER, IN_CLUSTER_NAME),
        (IN_CLUSTER_SERVER, "") => (IN_CLUSTER_SERVER, IN_CLUSTER_NAME),
        other => other,
    };
    let destinations = project
        .get("destinations")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let matches = |d: &Value, deny: bool| {
        let pick = |key: &str| {
            let p = text(d, key);
            match (deny, p.strip_prefix('!')) {
                (true, Some(rest)) => Some(rest.to_string()),
                (true, None) => None,
                (false, Some(_)) => None,
                (false, None) => Some(p.to_string()),
            }
        };
        let cluster_ok = |key: &str, value: &str| match pick(key) {
            Some(p) if !p.is_empty() => Some(glob(&p, value)),
            _ => None,
        };
        let cluster = cluster_ok("server", server)
            .or_else(|| cluster_ok("name", name))
            .unwrap_or(false);
        let ns = match pick("namespace") {
            Some(p) if !p.is_empty() => glob(&p, namespace),
            _ => false,
        };
        (cluster, ns)
    };
    for d in &destinations {
        // A denial: `namespace: '!kube-system'` (with the cluster given
        // plainly or denied too) forbids that namespace there.
        let denies_ns = text(d, "namespace").starts_with('!');
        let denies_cluster = text(d, "server").starts_with('!') || text(d, "name").starts_with('!');
        if denies_ns || denies_cluster {
            let (c_deny, ns_deny) = matches(d, true);
            let (c_plain, ns_plain) = matches(d, false);
            let cluster_hit = if denies_cluster { c_deny } else { c_plain };
            let ns_hit = if denies_ns { ns_deny } else { ns_plain };
            if cluster_hit && ns_hit {
                return Err(format!(
                    "spec.destination: namespace {namespace:?} on {server} is denied in project {project_name:?} (its destinations)"
                ));
            }
        }
    }
    let allowed = destinations.iter().any(|d| {
        !text(d, "namespace").starts_with('!')
            && !text(d, "server").starts_with('!')
            && !text(d, "name").starts_with('!')
            && {
                let (c, n) = matches(d, false);
                c && n
            }
    });
    if !allowed {
        return Err(format!(
            "spec.destination: namespace {namespace:?} on {server} is not permitted in project {project_name:?} (its destinations)"
        ));
    }
    Ok(())
}

/// The objects of `candidates` (untracked live objects in the app's
/// destination namespace) that are orphaned by the project's
/// `orphanedResources` rules, Argo CD's way: not owned by another object,
/// not in its `ignore` list (`{group, kind, name}` globs), and not the
/// namespace's own `default` ServiceAccount or `kube-root-ca.crt`
/// ConfigMap. `None` when the project does not monitor orphans.
pub fn orphans<'a>(
    project: &Value,
    candidates: &'a [std::sync::Arc<Value>],
) -> Option<Vec<&'a Value>> {
    let rules = project.get("orphanedResources").filter(|o| o.is_object())?;
    let ignore: Vec<Value> = rules
        .get("ignore")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Some(
        candidates
            .iter()
            .map(|o| o.as_ref())
            .filter(|o| {
                let (group, kind) = berth_api::kinds::group_kind(o);
                let name = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let owned = o
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|r| !r.is_empty());
                let builtin = (group.is_empty() && kind == "ServiceAccount" && name == "default")
                    || (group.is_empty() && kind == "ConfigMap" && name == "kube-root-ca.crt");
                let ignored = ignore.iter().any(|e| {
                    glob(e.get("group").and_then(Value::as_str).unwrap_or("*"), group)
                        && glob(e.get("kind").and_then(Value::as_str).unwrap_or("*"), kind)
                        && glob(e.get("name").and_then(Value::as_str).unwrap_or("*"), name)
                });
                !owned && !builtin && !ignored
            })
            .collect(),
    )
}

/// Whether the project permits a resource of `group`/`kind` named `name`
/// (Argo CD's rule): a cluster-scoped one must match
/// `clusterResourceWhitelist` (empty: none) and not
/// `clusterResourceBlacklist`; a namespaced one must match
/// `namespaceResourceWhitelist` when it is given, and not
/// `namespaceResourceBlacklist`. Entries are `{group, kind, name}` globs
/// (`name` optional).
pub fn resource_permitted(
    project: &Value,
    group: &str,
    kind: &str,
    name: &str,
    namespaced: bool,
) -> bool {
    let entries = |key: &str| -> Vec<Value> {
        project
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let hit = |list: &[Value]| {
        list.iter().any(|e| {
            glob(text(e, "group"), group)
                && glob(text(e, "kind"), kind)
                && (text(e, "name").is_empty() || glob(text(e, "name"), name))
        })
    };
    if namespaced {
        let allow = entries("namespaceResourceWhitelist");
        (allow.is_empty() || hit(&allow)) && !hit(&entries("namespaceResourceBlacklist"))
    } else {
        hit(&entries("clusterResourceWhitelist")) && !hit(&entries("clusterResourceBlacklist"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn source_namespaces() {
        let app = |ns: &str| json!({"metadata": {"name": "a", "namespace": ns}});
        let project = json!({"sourceNamespaces": ["team-*", "!team-secret"]});
        assert!(source_namespace(&app("argocd"), "argocd", "p", &json!({})).is_ok());
        assert!(source_namespace(&app("team-a"), "argocd", "p", &project).is_ok());
        let err = source_namespace(&app("team-secret"), "argocd", "p", &project).unwrap_err();
        assert!(err.contains("spec.sourceNamespaces"), "{err}");
        assert!(source_namespace(&app("other"), "argocd", "p", &project).is_err());
        assert!(source_namespace(&app("team-a"), "argocd", "p", &json!({})).is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything/at/all"));
        assert!(glob(
            "https://github.com/org/*",
            "https://github.com/org/repo"
        ));
        assert!(!glob(
            "https://github.com/org/*",
            "https://github.com/other/repo"
        ));
        assert!(glob("team-?", "team-a"));
        assert!(!glob("team-?", "team-ab"));
        assert!(glob("*-prod", "shop-prod"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-x-b-y"));
    }

    #[test]
    fn resource_lists() {
        let default = json!({"clusterResourceWhitelist": [{"group": "*", "kind": "*"}]});
        assert!(resource_permitted(&default, "", "Namespace", "x", false));
        assert!(resource_permitted(
            &default,
            "apps",
            "Deployment",
            "x",
            true
        ));
        let bare = json!({});
        assert!(
            !resource_permitted(&bare, "", "Namespace", "x", false),
            "no whitelist: no cluster-scoped"
        );
        assert!(resource_permitted(&bare, "", "ConfigMap", "x", true));
        let strict = json!({
            "clusterResourceWhitelist": [{"group": "rbac.authorization.k8s.io", "kind": "*"}],
            "clusterResourceBlacklist": [{"group": "*", "kind": "ClusterRoleBinding", "name": "admin-*"}],
            "namespaceResourceWhitelist": [{"group": "", "kind": "*"}, {"group": "apps", "kind": "Deployment"}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "Secret"}],
        });
        assert!(resource_permitted(
            &strict,
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "x",
            false
        ));
        assert!(!resource_permitted(
            &strict,
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "admin-all",
            false
        ));
        assert!(resource_permitted(
            &strict,
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            "reader",
            false
        ));
        assert!(!resource_permitted(&strict, "", "Namespace", "x", false));
        assert!(resource_permitted(&strict, "", "ConfigMap", "x", true));
        assert!(
            !resource_permitted(&strict, "", "Secret", "x", true),
            "blacklisted"
        );
        assert!(
            !resource_permitted(&strict, "batch", "Job", "x", true),
            "not whitelisted"
        );
    }

    fn app(repo: &str, server: &str, name: &str, ns: &str) -> Value {
        json!({"spec": {"source": {"repoURL": repo},
            "destination": {"server": server, "name": name, "namespace": ns}}})
    }

    #[test]
    fn project_table() {
        let default =
            json!({"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]});
        let team = json!({
            "sourceRepos": ["https://git.example/team/*", "!https://git.example/team/secret"],
            "destinations": [
                {"server": "https://kubernetes.default.svc", "namespace": "team-*"},
                {"name": "in-cluster", "namespace": "!team-admin"},
            ]
        });
        let bare = json!({"sourceRepos": ["*"]});
        let cases = vec![
            (
                "default allows everything",
                app("https://any/repo", IN_CLUSTER_SERVER, "", "x"),
                &default,
                true,
            ),
            (
                "team repo to team namespace",
                app(
                    "https://git.example/team/web",
                    IN_CLUSTER_SERVER,
                    "",
                    "team-web",
                ),
                &team,
                true,
            ),
            (
                "by cluster name",
                app("https://git.example/team/web", "", "in-cluster", "team-web"),
                &team,
                true,
            ),
            (
                "a repo outside the pattern",
                app(
                    "https://git.example/other/web",
                    IN_CLUSTER_SERVER,
                    "",
                    "team-web",
                ),
                &team,
                false,
            ),
            (
                "a denied repo",
                app(
                    "https://git.example/team/secret",
                    IN_CLUSTER_SERVER,
                    "",
                    "team-web",
                ),
                &team,
                false,
            ),
            (
                "a namespace outside the pattern",
                app(
                    "https://git.example/team/web",
                    IN_CLUSTER_SERVER,
                    "",
                    "kube-system",
                ),
                &team,
                false,
            ),
            (
                "a denied namespace",
                app(
                    "https://git.example/team/web",
                    IN_CLUSTER_SERVER,
                    "",
                    "team-admin",
                ),
                &team,
                false,
            ),
            (
                "another cluster",
                app(
                    "https://git.example/team/web",
                    "https://other:6443",
                    "",
                    "team-web",
                ),
                &team,
                false,
            ),
            (
                "no destinations at all",
                app("https://any/repo", IN_CLUSTER_SERVER, "", "x"),
                &bare,
                false,
            ),
        ];
        for (name, a, p, want) in cases {
            let got = check(&a, "team", p);
            assert_eq!(got.is_ok(), want, "{name}: {got:?}");
        }
        let err = check(
            &app(
                "https://git.example/other/web",
                IN_CLUSTER_SERVER,
                "",
                "team-web",
            ),
            "team",
            &team,
        )
        .unwrap_err();
        assert!(
            err.starts_with("spec.source.repoURL:") && err.contains("\"team\""),
            "{err}"
        );
    }
}
