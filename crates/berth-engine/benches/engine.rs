//! Health and diff over 10,000 realistic objects, on one core: objects per
//! second and bytes allocated per object.
//!
//! The live objects look like what the API server returns (defaults,
//! status, `managedFields`, server metadata); the desired ones like what Git
//! holds. One in five differs from Git. The mix: Deployments, Services,
//! ConfigMaps, Secrets, Pods, StatefulSets, HorizontalPodAutoscalers and
//! cert-manager Certificates (whose health is a shipped Lua script).
//!
//! `cargo bench -p berth-engine --bench engine`
//!
//! With `BERTH_BENCH_DUMP=FILE` the objects are also written to FILE, one
//! `{"desired": ..., "live": ...}` per line, so another engine can be run
//! on exactly the same input (`bench/argo-peer/`).
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use berth_engine::diff::{DiffOptions, diff};
use berth_engine::health::HealthChecks;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const OBJECTS: usize = 10_000;

fn meta(kind_ns: &str, name: &str, i: usize) -> Value {
    json!({
        "name": name,
        "namespace": kind_ns,
        "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop", "tier": if i.is_multiple_of(2) { "web" } else { "worker" }},
        "annotations": {"argocd.argoproj.io/tracking-id": format!("shop:/x:{kind_ns}/{name}")},
    })
}

fn served_meta(m: &Value, i: usize) -> Value {
    let mut m = m.clone();
    m["uid"] = json!(format!("6f1c2d3e-{i:04x}-4a5b-8c9d-0e1f2a3b4c5d"));
    m["resourceVersion"] = json!(format!("{}", 100_000 + i));
    m["generation"] = json!(2);
    m["creationTimestamp"] = json!("2026-11-01T10:00:00Z");
    m["managedFields"] = json!([
        {"manager": "berth", "operation": "Apply", "apiVersion": "v1", "time": "2026-11-01T10:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}, "f:tier": {}}}, "f:spec": {"f:replicas": {}}}},
        {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": "2026-11-01T10:00:05Z",
         "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}, "f:conditions": {}}}, "subresource": "status"}
    ]);
    m
}

/// (desired, live) for object `i`; `drift` makes the live object differ.
fn pair(i: usize) -> (Value, Value) {
    let ns = format!("team-{}", i % 20);
    let name = format!("obj-{i}");
    let drift = i.is_multiple_of(5);
    let m = meta(&ns, &name, i);
    let sm = served_meta(&m, i);
    match i % 10 {
        0..=2 => {
            let desired = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": m, "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": {"containers": [{
                    "name": "app", "image": format!("registry.example/shop/{name}:1.4.{}", i % 7),
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "eu-west-1"}],
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}
                }]}}
            }});
            let mut live = desired.clone();
            live["metadata"] = sm;
            live["spec"]["progressDeadlineSeconds"] = json!(600);
            live["spec"]["revisionHistoryLimit"] = json!(10);
            live["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
            let c = &mut live["spec"]["template"]["spec"]["containers"][0];
            c["imagePullPolicy"] = json!("IfNotPresent");
            c["terminationMessagePath"] = json!("/dev/termination-log");
            c["terminationMessagePolicy"] = json!("File");
            c["ports"][0]["protocol"] = json!("TCP");
            c["resources"]["limits"]["cpu"] = json!("1");
            c["readinessProbe"]["httpGet"]["scheme"] = json!("HTTP");
            c["readinessProbe"]["timeoutSeconds"] = json!(1);
            c["readinessProbe"]["periodSeconds"] = json!(10);
            c["readinessProbe"]["successThreshold"] = json!(1);
            c["readinessProbe"]["failureThreshold"] = json!(3);
            let ps = &mut live["spec"]["template"]["spec"];
            ps["restartPolicy"] = json!("Always");
            ps["terminationGracePeriodSeconds"] = json!(30);
            ps["dnsPolicy"] = json!("ClusterFirst");
            ps["schedulerName"] = json!("default-scheduler");
            ps["securityContext"] = json!({});
            if drift {
                live["spec"]["replicas"] = json!(5);
            }
            live["status"] = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "ReplicaSet has successfully progressed."}
            ]});
            (desired, live)
        }
        3 => {
            let desired = json!({"apiVersion": "v1", "kind": "Service", "metadata": m, "spec": {
                "selector": {"app.kubernetes.io/name": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
            let mut live = desired.clone();
            live["metadata"] = sm;
            live["spec"]["type"] = json!("ClusterIP");
            live["spec"]["clusterIP"] = json!(format!("10.96.{}.{}", i / 250 % 250, i % 250));
            live["spec"]["clusterIPs"] = json!([live["spec"]["clusterIP"].clone()]);
            live["spec"]["sessionAffinity"] = json!("None");
            live["spec"]["ipFamilies"] = json!(["IPv4"]);
            live["spec"]["ipFamilyPolicy"] = json!("SingleStack");
            live["spec"]["internalTrafficPolicy"] = json!("Cluster");
            live["spec"]["ports"][0]["protocol"] = json!("TCP");
            if drift {
                live["spec"]["ports"][0]["targetPort"] = json!(9090);
            }
            live["status"] = json!({"loadBalancer": {}});
            (desired, live)
        }
        4 => {
            let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": m, "data": {
                "application.yaml": format!("server:\n  port: 8080\nfeature:\n  flag-{i}: true\n"), "LOG_LEVEL": "info"}});
            let mut live = desired.clone();
            live["metadata"] = sm;
            if drift {
                live["data"]["LOG_LEVEL"] = json!("debug");
            }
            (desired, live)
        }
        5 => {
            let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": m, "type": "Opaque",
                "stringData": {"username": "shop", "password": format!("pw-{i}-s3cr3t")}});
            let mut live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": sm, "type": "Opaque",
                "data": {"username": "c2hvcA==", "password": "cHctMC1zM2NyM3Q="}});
            if drift {
                live["data"]["extra"] = json!("eA==");
            }
            (desired, live)
        }
        6 => {
            let desired = json!({"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": {"containers": [{"name": "job", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 3600"]}]}});
            let mut live = desired.clone();
            live["metadata"] = sm;
            live["spec"]["nodeName"] = json!(format!("node-{}", i % 3));
            live["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
            live["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "job", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-11-01T10:00:03Z"}}}]});
            (desired, live)
        }
        7 => {
            let desired = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": m, "spec": {
                "replicas": 3, "serviceName": name, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}}, "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]}});
            let mut live = desired.clone();
            live["metadata"] = sm;
            live["spec"]["podManagementPolicy"] = json!("OrderedReady");
            live["spec"]["updateStrategy"] =
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
            live["status"] = json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
                "currentRevision": "r1", "updateRevision": "r1"});
            (desired, live)
        }
        8 => {
            let desired = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": m, "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "minReplicas": 2, "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}});
            let mut live = desired.clone();
            live["metadata"] = sm;
            live["status"] = json!({"currentReplicas": 3, "desiredReplicas": 3, "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "recommended size matches current size"},
                {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound", "message": "the HPA was able to successfully calculate a replica count"}]});
            (desired, live)
        }
        _ => {
            let desired = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": m, "spec": {
                "secretName": format!("{name}-tls"), "dnsNames": [format!("{name}.shop.example")],
                "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}});
            let mut live = desired.clone();
            live["metadata"] = sm;
            live["status"] = json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                "message": "Certificate is up to date and has not expired", "observedGeneration": 2}],
                "notAfter": "2027-02-01T10:00:00Z", "notBefore": "2026-11-01T10:00:00Z", "renewalTime": "2027-01-02T10:00:00Z"});
            (desired, live)
        }
    }
}

fn dataset() -> Vec<(Value, Value)> {
    (0..OBJECTS).map(pair).collect()
}

fn bench(c: &mut Criterion) {
    let objects = dataset();
    if let Ok(path) = std::env::var("BERTH_BENCH_DUMP") {
        let mut out = String::new();
        for (d, l) in &objects {
            out.push_str(&json!({"desired": d, "live": l}).to_string());
            out.push('\n');
        }
        std::fs::write(&path, out).unwrap();
    }
    let checks = HealthChecks::new();
    let opts = DiffOptions {
        field_manager: "berth".into(),
        ..DiffOptions::default()
    };

    // Sanity: the input is what it claims to be.
    let out_of_sync = objects
        .iter()
        .filter(|(d, l)| {
            diff(Some(d), Some(l), None, &opts).unwrap().status
                != berth_engine::diff::SyncStatus::Synced
        })
        .count();
    let with_health = objects
        .iter()
        .filter(|(_, l)| checks.check(l).is_some())
        .count();

    // Allocation per object for one pass of each, measured once.
    let region = Region::new(GLOBAL);
    for (_, l) in &objects {
        black_box(checks.check(l));
    }
    let health_alloc = region.change();
    let region = Region::new(GLOBAL);
    for (d, l) in &objects {
        black_box(diff(Some(d), Some(l), None, &opts).unwrap());
    }
    let diff_alloc = region.change();
    eprintln!(
        "objects: {OBJECTS}, out of sync: {out_of_sync}, with a health check: {with_health}\n\
         allocated per object: health {} B in {:.1} allocations, diff {} B in {:.1} allocations",
        health_alloc.bytes_allocated / OBJECTS,
        health_alloc.allocations as f64 / OBJECTS as f64,
        diff_alloc.bytes_allocated / OBJECTS,
        diff_alloc.allocations as f64 / OBJECTS as f64,
    );

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(OBJECTS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("health", |b| {
        b.iter(|| {
            for (_, l) in &objects {
                black_box(checks.check(l));
            }
        })
    });
    group.bench_function("diff", |b| {
        b.iter(|| {
            for (d, l) in &objects {
                black_box(diff(Some(d), Some(l), None, &opts).unwrap());
            }
        })
    });
    group.bench_function("health+diff", |b| {
        b.iter(|| {
            for (d, l) in &objects {
                black_box(checks.check(l));
                black_box(diff(Some(d), Some(l), None, &opts).unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
