//! Argo CD's RBAC, read from `argocd-rbac-cm`: a policy CSV of
//! `p, subject, resource, action, object, effect` and `g, subject, role`
//! lines (`policy.csv` and every `policy.*.csv` key), `policy.default` for
//! every authenticated user, and Argo CD's built-in roles (`role:readonly`,
//! `role:admin`, with `admin` bound to `role:admin`).
//!
//! A request is allowed when some policy of the user (directly, through
//! groups and roles, transitively, or through the default role) allows it
//! and none denies it: deny beats allow. Resources, actions and objects
//! match exactly, or by glob (`*`); application objects are
//! `project/name`.

use std::collections::{BTreeMap, BTreeSet};

use berth_engine::glob::glob;

/// One `p` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// User, group or role.
    pub subject: String,
    /// `applications`, `projects`, `repositories`, `clusters`, `logs`,
    /// `exec`, `accounts`, ..., or `*`.
    pub resource: String,
    /// `get`, `create`, `update`, `delete`, `sync`, `override`, `action/...`
    /// or `*`.
    pub action: String,
    /// The object glob, e.g. `default/*`.
    pub object: String,
    /// `allow` (true) or `deny`.
    pub allow: bool,
}

/// A parsed policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    rules: Vec<Rule>,
    /// `g` lines: subject → roles.
    groups: BTreeMap<String, BTreeSet<String>>,
    /// `policy.default`, a role every authenticated user has.
    default_role: Option<String>,
    /// `scopes`: the claims of an SSO login that are RBAC subjects
    /// (Argo CD's default `[groups]`).
    scopes: Vec<String>,
    /// Lines that could not be used, each naming its key, line and why.
    pub problems: Vec<String>,
}

/// Argo CD's built-in policy.
const BUILTIN: &str = "\
p, role:readonly, applications, get, */*, allow
p, role:readonly, applicationsets, get, */*, allow
p, role:readonly, certificates, get, *, allow
p, role:readonly, clusters, get, *, allow
p, role:readonly, repositories, get, *, allow
p, role:readonly, projects, get, *, allow
p, role:readonly, accounts, get, *, allow
p, role:readonly, gpgkeys, get, *, allow
p, role:readonly, logs, get, */*, allow
p, role:admin, *, *, *, allow
g, role:admin, role:readonly
g, admin, role:admin
";

impl Policy {
    /// From the `data` of `argocd-rbac-cm` (empty when there is none).
    pub fn from_data(data: &BTreeMap<String, String>) -> Policy {
        let mut policy = Policy::default();
        policy.add_csv("built-in policy", BUILTIN);
        // `policy.csv` first, then the overlays in key order, as Argo CD
        // concatenates them.
        if let Some(csv) = data.get("policy.csv") {
            policy.add_csv("policy.csv", csv);
        }
        for (key, csv) in data {
            if key.starts_with("policy.") && key.ends_with(".csv") && key != "policy.csv" {
                policy.add_csv(key, csv);
            }
        }
        policy.default_role = data
            .get("policy.default")
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty());
        policy.scopes = data
            .get("scopes")
            .map(|s| {
                s.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(|x| x.trim().trim_matches(['"', '\'']).to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_else(|| vec!["groups".to_string()]);
        policy
    }

    /// The values of the claims `scopes` names (strings, or lists of
    /// strings), which a login through SSO acts as besides its subject.
    pub fn subjects_from_claims(&self, claims: &serde_json::Value) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for scope in &self.scopes {
            match claims.get(scope) {
                Some(serde_json::Value::String(s)) => out.push(s.clone()),
                Some(serde_json::Value::Array(a)) => out.extend(
                    a.iter()
                        .filter_map(serde_json::Value::as_str)
                        .map(String::from),
                ),
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Adds the roles of AppProjects (`spec.roles`): each role's policies,
    /// whose subject must be `proj:PROJECT:ROLE` and whose object must lie
    /// inside the project (`PROJECT/...`), so a project's authors cannot
    /// grant anything outside it; and its `groups`, bound to the role.
    pub fn add_project_roles<'a>(
        &mut self,
        projects: impl IntoIterator<Item = &'a serde_json::Value>,
    ) {
        for project in projects {
            let name = project
                .pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let roles = project
                .pointer("/spec/roles")
                .and_then(serde_json::Value::as_array);
            for role in roles.into_iter().flatten() {
                let role_name = role
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default();
                let subject = format!("proj:{name}:{role_name}");
                let key = format!("AppProject {name} role {role_name}");
                let before = self.rules.len();
                let lines: Vec<&str> = role
                    .get("policies")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(serde_json::Value::as_str)
                    .collect();
                self.add_csv(&key, &lines.join("\n"));
                let prefix = format!("{name}/");
                let mut kept = Vec::new();
                for rule in self.rules.drain(before..) {
                    if rule.subject != subject {
                        self.problems.push(format!(
                            "{key}: policy subject {:?} must be {subject:?}",
                            rule.subject
                        ));
                    } else if !rule.object.starts_with(&prefix) {
                        self.problems.push(format!(
                            "{key}: policy object {:?} is outside project {name:?} (use {prefix}...)",
                            rule.object
                        ));
                    } else {
                        kept.push(rule);
                    }
                }
                self.rules.extend(kept);
                for group in role
                    .get("groups")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(serde_json::Value::as_str)
                {
                    self.groups
                        .entry(group.to_string())
                        .or_default()
                        .insert(subject.clone());
                }
            }
        }
    }

    fn add_csv(&mut self, key: &str, csv: &str) {
        for (n, line) in csv.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            match fields.first().copied() {
                Some("p") if fields.len() == 5 || fields.len() == 6 => {
                    let effect = fields.get(5).copied().unwrap_or("allow");
                    if effect != "allow" && effect != "deny" {
                        self.problems.push(format!(
                            "argocd-rbac-cm {key} line {}: effect {effect:?}: use allow or deny",
                            n + 1
                        ));
                        continue;
                    }
                    self.rules.push(Rule {
                        subject: fields[1].to_string(),
                        resource: fields[2].to_string(),
                        action: fields[3].to_string(),
                        object: fields[4].to_string(),
                        allow: effect == "allow",
                    });
                }
                Some("g") if fields.len() == 3 => {
                    self.groups
                        .entry(fields[1].to_string())
                        .or_default()
                        .insert(fields[2].to_string());
                }
                _ => self.problems.push(format!(
                    "argocd-rbac-cm {key} line {}: expected `p, subject, resource, action, object[, effect]` or `g, subject, role`",
                    n + 1
                )),
            }
        }
    }

    /// Every subject `user` acts as: itself, its groups (from its token),
    /// the roles they are bound to (transitively), and the default role.
    fn subjects(&self, user: &str, groups: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<String> = std::iter::once(user.to_string())
            .chain(groups.iter().cloned())
            .chain(self.default_role.clone())
            .collect();
        while let Some(s) = todo.pop() {
            if !out.insert(s.clone()) {
                continue;
            }
            if let Some(roles) = self.groups.get(&s) {
                todo.extend(roles.iter().cloned());
            }
        }
        out
    }

    /// Whether `user` (with `groups`) may do `action` on `resource`
    /// `object`.
    pub fn allows(
        &self,
        user: &str,
        groups: &[String],
        resource: &str,
        action: &str,
        object: &str,
    ) -> bool {
        let subjects = self.subjects(user, groups);
        let mut allowed = false;
        for r in &self.rules {
            if !subjects.contains(&r.subject) {
                continue;
            }
            let matches = (r.resource == "*" || r.resource == resource)
                && (r.action == "*" || glob(&r.action, action))
                && glob(&r.object, object);
            if !matches {
                continue;
            }
            if !r.allow {
                return false;
            }
            allowed = true;
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(csv: &str, default: Option<&str>) -> Policy {
        let mut data = BTreeMap::new();
        data.insert("policy.csv".to_string(), csv.to_string());
        if let Some(d) = default {
            data.insert("policy.default".to_string(), d.to_string());
        }
        Policy::from_data(&data)
    }

    #[test]
    fn builtin_roles() {
        let p = policy("", None);
        assert!(p.allows("admin", &[], "applications", "sync", "default/web"));
        assert!(p.allows("admin", &[], "clusters", "delete", "https://x"));
        assert!(
            !p.allows("alice", &[], "applications", "get", "default/web"),
            "no default role"
        );
        let readonly = policy("", Some("role:readonly"));
        assert!(readonly.allows("alice", &[], "applications", "get", "default/web"));
        assert!(!readonly.allows("alice", &[], "applications", "sync", "default/web"));
    }

    #[test]
    fn roles_groups_globs_and_deny() {
        let p = policy(
            "p, role:deployer, applications, sync, shop/*, allow\n\
             p, role:deployer, applications, get, */*, allow\n\
             p, role:deployer, applications, sync, shop/payments, deny\n\
             g, bob, role:deployer\n\
             g, sre-team, role:admin\n\
             # a comment\n\
             p, carol, applications, action/*, shop/web, allow\n",
            None,
        );
        assert!(p.allows("bob", &[], "applications", "sync", "shop/web"));
        assert!(!p.allows("bob", &[], "applications", "sync", "other/web"));
        assert!(
            !p.allows("bob", &[], "applications", "sync", "shop/payments"),
            "deny beats allow"
        );
        assert!(p.allows("bob", &[], "applications", "get", "other/web"));
        assert!(!p.allows("bob", &[], "applications", "delete", "shop/web"));
        assert!(
            p.allows(
                "dave",
                &["sre-team".into()],
                "applications",
                "delete",
                "x/y"
            ),
            "group from the token"
        );
        assert!(p.allows(
            "carol",
            &[],
            "applications",
            "action/apps/Deployment/restart",
            "shop/web"
        ));
        assert!(p.problems.is_empty(), "{:?}", p.problems);
    }

    #[test]
    fn project_roles_stay_inside_their_project() {
        let mut p = policy("", None);
        let project = serde_json::json!({"metadata": {"name": "shop"}, "spec": {"roles": [{
            "name": "ci",
            "policies": [
                "p, proj:shop:ci, applications, sync, shop/*, allow",
                "p, proj:shop:ci, applications, get, */*, allow",
                "p, proj:other:ci, applications, get, other/*, allow",
            ],
            "groups": ["shop-devs"],
        }]}});
        p.add_project_roles([&project]);
        assert!(p.allows("proj:shop:ci", &[], "applications", "sync", "shop/web"));
        assert!(
            !p.allows("proj:shop:ci", &[], "applications", "get", "else/web"),
            "outside the project: dropped"
        );
        assert!(p.allows(
            "dana",
            &["shop-devs".into()],
            "applications",
            "sync",
            "shop/web"
        ));
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
    }

    #[test]
    fn bad_lines_are_named() {
        let p = policy(
            "p, a, applications, get\np, a, applications, get, */*, maybe\nx, y\n",
            None,
        );
        assert_eq!(p.problems.len(), 3, "{:?}", p.problems);
        assert!(p.problems[1].contains("line 2"));
    }
}
