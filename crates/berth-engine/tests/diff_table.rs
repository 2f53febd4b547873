//! Diff rules as a table, written from Kubernetes' and Argo CD's documented
//! semantics, plus properties checked over generated objects.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::type_complexity,
    missing_docs
)]

use berth_engine::diff::{
    Change, DiffOptions, IgnoreDifference, IgnoreRule, ResourceDiff, SyncStatus, app_status, diff,
};
use serde_json::{Value, json};

fn deploy(replicas: Value, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "app", "image": image,
                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                    "env": [{"name": "LEVEL", "value": "1"}]
                }]}
            }
        }
    })
}

/// What the API server makes of `deploy(...)`: defaults, status, metadata.
fn served(mut obj: Value) -> Value {
    let meta = obj["metadata"].as_object_mut().unwrap();
    meta.insert("uid".into(), json!("9a7c2c1e-0000-4000-8000-000000000001"));
    meta.insert("resourceVersion".into(), json!("4711"));
    meta.insert("generation".into(), json!(3));
    meta.insert("creationTimestamp".into(), json!("2026-11-01T10:00:00Z"));
    meta.insert(
        "annotations".into(),
        json!({"deployment.kubernetes.io/revision": "3"}),
    );
    meta.insert(
        "managedFields".into(),
        json!([{"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}}]),
    );
    obj["spec"]["progressDeadlineSeconds"] = json!(600);
    obj["spec"]["revisionHistoryLimit"] = json!(10);
    obj["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    let c = &mut obj["spec"]["template"]["spec"]["containers"][0];
    c["imagePullPolicy"] = json!("IfNotPresent");
    c["terminationMessagePath"] = json!("/dev/termination-log");
    obj["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    obj["status"] = json!({"replicas": 2, "readyReplicas": 2});
    obj
}

fn opts() -> DiffOptions {
    DiffOptions {
        field_manager: "berth".into(),
        ..DiffOptions::default()
    }
}

fn rules(v: Value) -> DiffOptions {
    DiffOptions {
        ignore: IgnoreRule::parse_list(v.as_array().unwrap()).unwrap(),
        ..opts()
    }
}

fn paths(d: &ResourceDiff) -> Vec<&str> {
    d.fields.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn diff_table() {
    // (name, desired, live, options, expected status, expected changed paths)
    let cases: Vec<(
        &str,
        Option<Value>,
        Option<Value>,
        DiffOptions,
        SyncStatus,
        Vec<&str>,
    )> = vec![
        (
            "same object",
            Some(deploy(json!(2), "web:1")),
            Some(deploy(json!(2), "web:1")),
            opts(),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "server defaults, status and server metadata are not differences",
            Some(deploy(json!(2), "web:1")),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "replicas changed",
            Some(deploy(json!(3), "web:1")),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::OutOfSync,
            vec![".spec.replicas"],
        ),
        (
            "image changed inside a named list with defaulted items",
            Some(deploy(json!(2), "web:2")),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::OutOfSync,
            vec![".spec.template.spec.containers[0].image"],
        ),
        (
            "integer and float of the same value",
            Some(deploy(json!(2.0), "web:1")),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "quantities written differently in resource fields",
            Some({
                let mut d = deploy(json!(2), "web:1");
                d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] =
                    json!({"cpu": "1000m", "memory": "1024Mi"});
                d
            }),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "a number where the server keeps a quantity string",
            Some({
                let mut d = deploy(json!(2), "web:1");
                d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] =
                    json!(1);
                d
            }),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "quantity-looking strings outside resource fields are text",
            Some({
                let mut d = deploy(json!(2), "web:1");
                d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("1000m");
                d
            }),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::OutOfSync,
            vec![".spec.template.spec.containers[0].env[0].value"],
        ),
        (
            "quantities that differ",
            Some({
                let mut d = deploy(json!(2), "web:1");
                d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] =
                    json!("500m");
                d
            }),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::OutOfSync,
            vec![".spec.template.spec.containers[0].resources.limits.cpu"],
        ),
        (
            "empty map, empty list and null are the same as absent",
            Some({
                let mut d = deploy(json!(2), "web:1");
                d["metadata"]["annotations"] = json!({});
                d["spec"]["template"]["spec"]["volumes"] = json!([]);
                d["spec"]["template"]["spec"]["nodeSelector"] = Value::Null;
                d
            }),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "missing from the cluster",
            Some(deploy(json!(2), "web:1")),
            None,
            opts(),
            SyncStatus::OutOfSync,
            vec![],
        ),
        (
            "only in the cluster",
            None,
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::OutOfSync,
            vec![],
        ),
        (
            "a field removed from Git that the last apply set",
            Some(deploy(json!(2), "web:1")),
            Some({
                let mut l = served(deploy(json!(2), "web:1"));
                l["spec"]["minReadySeconds"] = json!(5);
                let mut applied = deploy(json!(2), "web:1");
                applied["spec"]["minReadySeconds"] = json!(5);
                l["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
                    json!(applied.to_string());
                l
            }),
            opts(),
            SyncStatus::OutOfSync,
            vec![".spec.minReadySeconds"],
        ),
        (
            "an empty map in last-applied removes nothing the server set inside it",
            Some(deploy(json!(2), "web:1")),
            Some({
                let mut l = served(deploy(json!(2), "web:1"));
                let mut applied = deploy(json!(2), "web:1");
                applied["metadata"]["annotations"] = json!({});
                l["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
                    json!(applied.to_string());
                l
            }),
            opts(),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "an annotation the last apply set and Git dropped",
            Some(deploy(json!(2), "web:1")),
            Some({
                let mut l = served(deploy(json!(2), "web:1"));
                l["metadata"]["annotations"]["team"] = json!("a");
                let mut applied = deploy(json!(2), "web:1");
                applied["metadata"]["annotations"] = json!({"team": "a"});
                l["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
                    json!(applied.to_string());
                l
            }),
            opts(),
            SyncStatus::OutOfSync,
            vec![".metadata.annotations.team"],
        ),
        (
            "a field the last apply did not set is a server default",
            Some(deploy(json!(2), "web:1")),
            Some({
                let mut l = served(deploy(json!(2), "web:1"));
                l["spec"]["minReadySeconds"] = json!(5);
                l["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
                    json!(deploy(json!(2), "web:1").to_string());
                l
            }),
            opts(),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "a field our server-side apply manager owns and Git dropped",
            Some(deploy(json!(2), "web:1")),
            Some({
                let mut l = served(deploy(json!(2), "web:1"));
                l["spec"]["minReadySeconds"] = json!(5);
                l["metadata"]["managedFields"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({
                        "manager": "berth", "operation": "Apply",
                        "fieldsV1": {"f:spec": {"f:replicas": {}, "f:minReadySeconds": {}}}
                    }));
                l
            }),
            opts(),
            SyncStatus::OutOfSync,
            vec![".spec.minReadySeconds"],
        ),
        (
            "a dropped env var in a list merged by name",
            Some(deploy(json!(2), "web:1")),
            Some({
                let mut l = served(deploy(json!(2), "web:1"));
                l["spec"]["template"]["spec"]["containers"][0]["env"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "DEBUG", "value": "1"}));
                l
            }),
            opts(),
            SyncStatus::OutOfSync,
            vec![".spec.template.spec.containers[0].env"],
        ),
        (
            "ignoreDifferences by JSON pointer",
            Some(deploy(json!(3), "web:1")),
            Some(served(deploy(json!(2), "web:1"))),
            rules(
                json!([{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]),
            ),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "ignoreDifferences for another name does not apply",
            Some(deploy(json!(3), "web:1")),
            Some(served(deploy(json!(2), "web:1"))),
            rules(
                json!([{"group": "apps", "kind": "Deployment", "name": "other", "jsonPointers": ["/spec/replicas"]}]),
            ),
            SyncStatus::OutOfSync,
            vec![".spec.replicas"],
        ),
        (
            "ignoreDifferences for another namespace does not apply",
            Some(deploy(json!(3), "web:1")),
            Some(served(deploy(json!(2), "web:1"))),
            rules(
                json!([{"group": "apps", "kind": "Deployment", "namespace": "dev", "jsonPointers": ["/spec/replicas"]}]),
            ),
            SyncStatus::OutOfSync,
            vec![".spec.replicas"],
        ),
        (
            "ignoreDifferences with the empty (core) group does not match apps",
            Some(deploy(json!(3), "web:1")),
            Some(served(deploy(json!(2), "web:1"))),
            rules(json!([{"kind": "Deployment", "jsonPointers": ["/spec/replicas"]}])),
            SyncStatus::OutOfSync,
            vec![".spec.replicas"],
        ),
        (
            "ignoreDifferences with wildcards",
            Some(deploy(json!(3), "web:1")),
            Some(served(deploy(json!(2), "web:1"))),
            rules(json!([{"group": "*", "kind": "*", "jsonPointers": ["/spec/replicas"]}])),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "ignoreDifferences by jq path expression",
            Some(deploy(json!(2), "web:2")),
            Some(served(deploy(json!(2), "web:1"))),
            rules(json!([{"group": "apps", "kind": "Deployment",
                "jqPathExpressions": [".spec.template.spec.containers[] | select(.name == \"app\") | .image"]}])),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "ignoreDifferences by field manager",
            Some(deploy(json!(2), "web:1")),
            Some({
                let mut l = served(deploy(json!(5), "web:1"));
                l["metadata"]["managedFields"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({
                        "manager": "kube-controller-manager", "operation": "Update",
                        "fieldsV1": {"f:spec": {"f:replicas": {}}}
                    }));
                l
            }),
            rules(
                json!([{"group": "apps", "kind": "Deployment", "managedFieldsManagers": ["kube-controller-manager"]}]),
            ),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "a field manager that owns something else does not hide replicas",
            Some(deploy(json!(2), "web:1")),
            Some(served(deploy(json!(5), "web:1"))),
            rules(
                json!([{"group": "apps", "kind": "Deployment", "managedFieldsManagers": ["kube-controller-manager"]}]),
            ),
            SyncStatus::OutOfSync,
            vec![".spec.replicas"],
        ),
        (
            "Secret stringData equals the live data it encodes",
            Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "prod"},
                "stringData": {"password": "hunter2"}}),
            ),
            Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "prod", "uid": "x"},
                "type": "Opaque", "data": {"password": "aHVudGVyMg=="}}),
            ),
            opts(),
            SyncStatus::Synced,
            vec![],
        ),
        (
            "Secret data that differs",
            Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "prod"},
                "data": {"password": "bmV3LXBhc3N3b3Jk"}}),
            ),
            Some(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "prod"},
                "data": {"password": "aHVudGVyMg=="}}),
            ),
            opts(),
            SyncStatus::OutOfSync,
            vec![".data.password"],
        ),
        (
            "a label added in Git",
            Some({
                let mut d = deploy(json!(2), "web:1");
                d["metadata"]["labels"]["tier"] = json!("front");
                d
            }),
            Some(served(deploy(json!(2), "web:1"))),
            opts(),
            SyncStatus::OutOfSync,
            vec![".metadata.labels.tier"],
        ),
    ];
    let total = cases.len();
    for (name, desired, live, opts, status, want) in cases {
        let d = diff(desired.as_ref(), live.as_ref(), None, &opts)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.status, status, "{name}: {:?}", d.fields);
        assert_eq!(paths(&d), want, "{name}");
    }
    assert!(total >= 25);
}

#[test]
fn predicted_object_is_compared_whole() {
    let desired = deploy(json!(2), "web:1");
    let live = served(deploy(json!(2), "web:1"));
    // The dry run says the server would set a default the live object lacks.
    let mut predicted = served(deploy(json!(2), "web:1"));
    predicted["spec"]["minReadySeconds"] = json!(0);
    predicted["spec"]["template"]["spec"]["dnsPolicy"] = json!("ClusterFirst");
    let d = diff(Some(&desired), Some(&live), Some(&predicted), &opts()).unwrap();
    assert_eq!(d.status, SyncStatus::OutOfSync);
    // 0 is a value, not an empty one.
    assert_eq!(
        paths(&d),
        vec![".spec.template.spec.dnsPolicy", ".spec.minReadySeconds"]
    );
    let same = diff(Some(&desired), Some(&live), Some(&live), &opts()).unwrap();
    assert_eq!(same.status, SyncStatus::Synced);
}

#[test]
fn changes_and_app_status() {
    let d = deploy(json!(2), "web:1");
    let create = diff(Some(&d), None, None, &opts()).unwrap();
    assert_eq!(create.change, Change::Create);
    let mut extra = served(deploy(json!(2), "web:1"));
    let prune = diff(None, Some(&extra), None, &opts()).unwrap();
    assert_eq!(prune.change, Change::Prune);
    extra["metadata"]["annotations"]["argocd.argoproj.io/compare-options"] =
        json!("IgnoreExtraneous");
    let ignored = diff(None, Some(&extra), None, &opts()).unwrap();
    assert_eq!(
        ignored.status,
        SyncStatus::OutOfSync,
        "still shown as OutOfSync"
    );
    let synced = diff(Some(&d), Some(&d), None, &opts()).unwrap();
    assert_eq!(app_status([&synced]), SyncStatus::Synced);
    assert_eq!(app_status([&synced, &ignored]), SyncStatus::Synced);
    assert_eq!(app_status([&synced, &prune]), SyncStatus::OutOfSync);
    assert_eq!(app_status([&synced, &create]), SyncStatus::OutOfSync);
    assert_eq!(app_status(std::iter::empty()), SyncStatus::Synced);
}

#[test]
fn unified_diff_for_people() {
    let d = diff(
        Some(&deploy(json!(3), "web:2")),
        Some(&served(deploy(json!(2), "web:1"))),
        None,
        &opts(),
    )
    .unwrap();
    let text = d.unified();
    assert!(text.contains("--- live/apps/Deployment/prod/web"), "{text}");
    assert!(
        text.contains("+++ target/apps/Deployment/prod/web"),
        "{text}"
    );
    assert!(text.contains("-  replicas: 2\n"), "{text}");
    assert!(text.contains("+  replicas: 3\n"), "{text}");
    assert!(text.contains("image: web:2"), "{text}");
    assert!(!text.contains("resourceVersion"), "normalized: {text}");
    let same = diff(
        Some(&deploy(json!(2), "web:1")),
        Some(&deploy(json!(2), "web:1")),
        None,
        &opts(),
    )
    .unwrap();
    assert_eq!(same.unified(), "");
}

#[test]
fn secret_values_never_appear() {
    let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "prod"},
        "stringData": {"password": "correct-horse", "token": "same"}});
    let live = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s", "namespace": "prod", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"stringData\":{\"password\":\"battery-staple\"}}"}},
        "data": {"password": "YmF0dGVyeS1zdGFwbGU=", "token": "c2FtZQ==", "old": "b2xkLXZhbHVl"}});
    let d = diff(Some(&desired), Some(&live), None, &opts()).unwrap();
    assert_eq!(d.status, SyncStatus::OutOfSync);
    let shown = format!(
        "{}{}{}",
        d.unified(),
        serde_json::to_string(&d).unwrap(),
        format_args!("{:?}", d)
    );
    for secret in [
        "correct-horse",
        "battery-staple",
        "Y29ycmVjdC1ob3JzZQ==",
        "YmF0dGVyeS1zdGFwbGU=",
        "c2FtZQ==",
        "b2xkLXZhbHVl",
        "same",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    // Equal values share a mask, different ones do not.
    let token = d.fields.iter().find(|f| f.path == ".data.token");
    assert!(token.is_none(), "equal token is not a difference");
    let pw = d
        .fields
        .iter()
        .find(|f| f.path == ".data.password")
        .unwrap();
    assert_ne!(pw.live, pw.target);
    assert!(
        pw.live
            .as_ref()
            .unwrap()
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c == '+')
    );
}

#[test]
fn masked_annotations() {
    let mut desired = deploy(json!(2), "web:1");
    desired["metadata"]["annotations"] = json!({"vault.example.com/token": "s3cr3t-a"});
    let mut live = served(deploy(json!(2), "web:1"));
    live["metadata"]["annotations"]["vault.example.com/token"] = json!("s3cr3t-b");
    let o = DiffOptions {
        mask_annotations: vec!["vault.example.com/token".into()],
        ..opts()
    };
    let d = diff(Some(&desired), Some(&live), None, &o).unwrap();
    assert_eq!(d.status, SyncStatus::OutOfSync);
    let shown = format!("{}{}", d.unified(), serde_json::to_string(&d).unwrap());
    assert!(!shown.contains("s3cr3t"), "{shown}");
}

#[test]
fn invalid_rules_are_named() {
    let err =
        IgnoreRule::parse_list(&[json!({"kind": "Deployment", "jsonPointers": ["spec/replicas"]})])
            .unwrap_err();
    assert!(
        err.to_string()
            .contains("ignoreDifferences[0]: jsonPointers"),
        "{err}"
    );
    let err = IgnoreRule::parse_list(&[
        json!({"kind": "Deployment"}),
        json!({"kind": "Deployment", "jqPathExpressions": [".spec["]}),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("ignoreDifferences[1]"), "{err}");
    let err = IgnoreRule::parse_list(&[json!({"kind": "Deployment", "jsonPointer": ["/x"]})])
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `jsonPointer`"),
        "{err}"
    );
    assert!(IgnoreRule::new(0, IgnoreDifference::default()).is_ok());
}

// --- properties over generated objects ---------------------------------

/// A small deterministic generator (xorshift), so failures reproduce.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn word(&mut self) -> String {
        const WORDS: [&str; 12] = [
            "name", "image", "spec", "data", "value", "port", "labels", "x", "cpu", "limits",
            "items", "enabled",
        ];
        WORDS[self.below(WORDS.len() as u64) as usize].to_string()
    }
    fn value(&mut self, depth: u32) -> Value {
        match if depth > 3 {
            self.below(4)
        } else {
            self.below(7)
        } {
            0 => json!(self.below(1000)),
            1 => json!(format!("v{}", self.below(50))),
            2 => json!(self.below(2) == 0),
            3 => json!(format!("{}m", self.below(3000))),
            4 | 5 => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.below(5) {
                    m.insert(self.word(), self.value(depth + 1));
                }
                Value::Object(m)
            }
            _ => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
        }
    }
    fn object(&mut self, kind: &str) -> Value {
        let group = if kind == "Secret" {
            "v1"
        } else {
            "example.com/v1"
        };
        let mut obj = json!({"apiVersion": group, "kind": kind,
            "metadata": {"name": format!("o{}", self.below(100)), "namespace": "ns"}});
        for _ in 0..self.below(6) {
            let k = self.word();
            obj[k] = self.value(0);
        }
        if kind == "Secret" {
            let mut data = serde_json::Map::new();
            for i in 0..self.below(4) + 1 {
                data.insert(
                    format!("k{i}"),
                    json!(format!("secret-{}-{}", self.next(), i)),
                );
            }
            obj["data"] = Value::Object(data);
        }
        obj
    }
}

#[test]
fn an_object_never_differs_from_itself() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    for i in 0..2000 {
        let kind = if i % 3 == 0 { "Secret" } else { "Widget" };
        let obj = g.object(kind);
        let d = diff(Some(&obj), Some(&obj), None, &opts()).unwrap();
        assert_eq!(d.status, SyncStatus::Synced, "{obj}: {:?}", d.fields);
        let d = diff(Some(&obj), Some(&obj), Some(&obj), &opts()).unwrap();
        assert_eq!(d.status, SyncStatus::Synced, "{obj}: {:?}", d.fields);
        assert_eq!(d.unified(), "");
    }
}

#[test]
fn no_secret_value_ever_appears_in_output() {
    let mut g = Gen(0x2545_f491_4f6c_dd1d);
    for _ in 0..1000 {
        let desired = g.object("Secret");
        let mut live = g.object("Secret");
        live["metadata"]["name"] = desired["metadata"]["name"].clone();
        // Share one value now and then, so equal masks are exercised.
        if g.below(2) == 0 {
            live["data"]["k0"] = desired["data"]["k0"].clone();
        }
        let mut values: Vec<String> = Vec::new();
        for obj in [&desired, &live] {
            for v in obj["data"].as_object().unwrap().values() {
                values.push(v.as_str().unwrap().to_string());
            }
        }
        for (d, l) in [
            (Some(&desired), Some(&live)),
            (Some(&desired), None),
            (None, Some(&live)),
        ] {
            let result = diff(d, l, None, &opts()).unwrap();
            let shown = format!(
                "{}{}{:?}",
                result.unified(),
                serde_json::to_string(&result).unwrap(),
                result
            );
            for v in &values {
                assert!(!shown.contains(v.as_str()), "{v} leaked");
            }
        }
    }
}
