//! Executing a sync: the engine's plan, step by step, against the cluster.
//! Applies are server-side applies as field manager `berth`; hooks are
//! created and waited for; prunes delete only the exact objects the plan
//! names (which come from this app's tracking); after each wave the plan's
//! barrier waits for health. The first failure stops the sync and runs the
//! plan's failure steps (SyncFail hooks, HookFailed deletions).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_cluster::apply::{
    Applier, ApplyOptions as ClusterApply, Propagation as ClusterPropagation,
};
use berth_cluster::discovery::ResourceTypes;
use berth_engine::health::{HealthChecks, Status};
use berth_engine::plan::{ObjectRef, Phase, Plan, Propagation, Step};
use futures::StreamExt;
use serde_json::{Value, json};

/// How long a wave may take to become healthy, and a hook to finish.
pub const WAIT_LIMIT: Duration = Duration::from_secs(300);

/// Applies in flight at once within a batch of one kind.
pub const APPLY_CONCURRENCY: usize = 8;

/// The message of a terminated operation, as Argo CD writes it.
pub const TERMINATED: &str = "Operation terminated";

/// The outcome of a sync.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `Succeeded` or `Failed` (Argo CD's operation phases).
    pub phase: &'static str,
    /// What happened, for people.
    pub message: String,
    /// `syncResult.resources`.
    pub resources: Vec<Value>,
    /// Hooks this attempt created, so a retry can remove them first.
    pub hooks: Vec<ObjectRef>,
}

/// What the executor needs.
pub struct Executor<'a> {
    /// The cluster's types.
    pub types: &'a ResourceTypes,
    /// Applies as `berth`.
    pub applier: &'a Applier,
    /// Health checks for barriers and hooks.
    pub checks: &'a HealthChecks,
    /// Desired manifests by reference.
    pub desired: HashMap<ObjectRef, Value>,
    /// Live objects (for prunes: their uid) by reference.
    pub live: HashMap<ObjectRef, Value>,
    /// The revision synced, for hook names.
    pub revision: String,
    /// Seconds since the epoch when the operation started (hook names).
    pub started_at: i64,
    /// How long to wait for a barrier.
    pub wait_limit: Duration,
    /// Set when the operation is to be terminated: no further step starts
    /// and waits end.
    pub cancel: Option<&'a AtomicBool>,
    /// Where progress goes as steps finish, for the Application's status
    /// while the operation runs.
    pub progress: Option<&'a tokio::sync::watch::Sender<Report>>,
    /// The operation's identity (its start time), written on its hooks
    /// (`berth.io/operation`), so a run resumed after the controller died
    /// knows its own hooks from an earlier operation's.
    pub operation: String,
    /// Hooks this operation completed before the controller died: not run
    /// again when it resumes.
    pub done_hooks: std::collections::HashSet<String>,
}

/// The annotation that names the operation a hook was created by.
pub const OPERATION_ANNOTATION: &str = "berth.io/operation";

/// Progress of a running plan: where it is and the results so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The phase of the step running or last done.
    pub phase: String,
    /// Its wave.
    pub wave: i64,
    /// Steps done, of `total`.
    pub done: usize,
    /// Steps in the plan's phases and waves.
    pub total: usize,
    /// `syncResult.resources` entries so far.
    pub resources: Vec<Value>,
    /// Each phase and wave of the plan in order, with its steps done.
    pub groups: Vec<GroupProgress>,
}

/// One phase and wave of a running sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupProgress {
    /// `PreSync`, `Sync`, `PostSync`...
    pub phase: String,
    /// The sync wave.
    pub wave: i64,
    /// Its steps.
    pub total: usize,
    /// Those done.
    pub done: usize,
}

impl GroupProgress {
    /// As the status shows it.
    pub fn to_json(&self) -> Value {
        json!({"phase": self.phase, "wave": self.wave, "total": self.total, "done": self.done})
    }
}

/// The plan's phases and waves (consecutive steps of one phase and wave
/// form a group), with the steps before `done` counted as done.
fn groups(steps: &[(String, i64)], done: usize) -> Vec<GroupProgress> {
    let mut out: Vec<GroupProgress> = Vec::new();
    for (i, (phase, wave)) in steps.iter().enumerate() {
        let same = out
            .last()
            .is_some_and(|g| g.phase == *phase && g.wave == *wave);
        if !same {
            out.push(GroupProgress {
                phase: phase.clone(),
                wave: *wave,
                ..GroupProgress::default()
            });
        }
        if let Some(g) = out.last_mut() {
            g.total += 1;
            if i < done {
                g.done += 1;
            }
        }
    }
    out
}

/// The reference the plan uses for a manifest.
pub fn object_ref(obj: &Value) -> ObjectRef {
    let (group, kind) = berth_api::kinds::group_kind(obj);
    let text = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = text("/metadata/name");
    let generate_name =
        Some(text("/metadata/generateName")).filter(|g| name.is_empty() && !g.is_empty());
    ObjectRef {
        group: group.to_string(),
        kind: kind.to_string(),
        namespace: text("/metadata/namespace"),
        name,
        generate_name,
        api_version: text("/apiVersion"),
    }
}

/// A `syncResult.resources` entry.
pub fn result(o: &ObjectRef, phase: Phase, status: &str, message: String, hook: bool) -> Value {
    let version = o.api_version.rsplit('/').next().unwrap_or_default();
    let mut r = json!({
        "group": o.group, "version": version, "kind": o.kind,
        "namespace": o.namespace, "name": o.name,
        "status": status, "message": message, "syncPhase": phase.to_string(),
    });
    if hook {
        r["hookType"] = json!(phase.to_string());
    }
    r
}

fn propagation(p: Propagation) -> ClusterPropagation {
    match p {
        Propagation::Foreground => ClusterPropagation::Foreground,
        Propagation::Background => ClusterPropagation::Background,
        Propagation::Orphan => ClusterPropagation::Orphan,
    }
}

/// A manifest for a reference that has only identity (prune, delete,
/// wait), enough to address it.
fn address(o: &ObjectRef) -> Value {
    json!({"apiVersion": o.api_version, "kind": o.kind,
        "metadata": {"name": o.name, "namespace": o.namespace}})
}

/// What a run has done so far.
#[derive(Default)]
struct Progress {
    /// Names given to generateName hooks, so later steps find them.
    names: HashMap<ObjectRef, ObjectRef>,
    /// `syncResult.resources`.
    resources: Vec<Value>,
    /// Hooks created.
    hooks: Vec<ObjectRef>,
}

impl Executor<'_> {
    /// Runs the plan. A dry run applies with the API server's dry run and
    /// deletes nothing.
    /// `last_attempt`: a failure runs the plan's failure steps (SyncFail
    /// hooks) only when no retry follows.
    pub async fn run(&self, plan: &Plan, dry_run: bool, last_attempt: bool) -> Outcome {
        let mut progress = Progress::default();
        // Collected first: an iterator of closures held across awaits
        // would make the future lose `Send`.
        let mut all: Vec<(Phase, &Step)> = Vec::new();
        let mut waves: Vec<i64> = Vec::new();
        for step in &plan.prepare {
            all.push((Phase::PreSync, step));
            waves.push(0);
        }
        for group in &plan.groups {
            for step in &group.steps {
                all.push((group.phase, step));
                waves.push(group.wave);
            }
        }
        // The steps before the phases (the destination namespace) are
        // shown as their own group, not as a PreSync wave.
        let layout: Vec<(String, i64)> = all
            .iter()
            .zip(&waves)
            .enumerate()
            .map(|(i, ((p, _), w))| {
                if i < plan.prepare.len() {
                    ("Prepare".to_string(), 0)
                } else {
                    (format!("{p:?}"), *w)
                }
            })
            .collect();
        let report = |i: usize, progress: &Progress| {
            if let Some(tx) = self.progress {
                let at = i.min(all.len().saturating_sub(1));
                tx.send_replace(Report {
                    phase: layout.get(at).map(|(p, _)| p.clone()).unwrap_or_default(),
                    wave: waves.get(at).copied().unwrap_or(0),
                    done: i,
                    total: all.len(),
                    resources: progress.resources.clone(),
                    groups: groups(&layout, i),
                });
            }
        };
        let mut failure = None;
        let mut i = 0;
        while i < all.len() {
            if self.cancelled() {
                failure = Some(TERMINATED.to_string());
                break;
            }
            // Consecutive applies of one kind in one phase go out together
            // (as Argo CD applies a wave's resources concurrently); kinds
            // stay in order, so namespaces and CRDs come first.
            let batch: Vec<&berth_engine::plan::ApplyStep> = all[i..]
                .iter()
                .map_while(|(phase, step)| match step {
                    Step::Apply(a) if *phase == all[i].0 => Some(a),
                    _ => None,
                })
                .take_while(|a| match &all[i].1 {
                    Step::Apply(first) => first.object.kind == a.object.kind,
                    _ => false,
                })
                .collect();
            if batch.len() > 1 {
                let phase = all[i].0;
                i += batch.len();
                // Built first: a closure inside the stream would make the
                // future lose `Send`.
                let mut applies = Vec::with_capacity(batch.len());
                for a in batch {
                    applies.push(self.apply(a, phase, dry_run));
                }
                let results: Vec<(Value, Result<(), String>)> = futures::stream::iter(applies)
                    .buffered(APPLY_CONCURRENCY)
                    .collect()
                    .await;
                for (r, outcome) in results {
                    progress.resources.push(r);
                    if let Err(m) = outcome
                        && failure.is_none()
                    {
                        failure = Some(m);
                    }
                }
                report(i, &progress);
                if failure.is_some() {
                    break;
                }
                continue;
            }
            let (phase, step) = all[i];
            i += 1;
            if let Err(message) = self.step(step, phase, dry_run, &mut progress).await {
                failure = Some(message);
                break;
            }
            report(i, &progress);
        }
        let none = Vec::new();
        // A terminated operation stops where it is: no failure hooks.
        let terminated = self.cancelled();
        let (tail, outcome_phase, message) = match &failure {
            Some(_) if terminated => (&none, "Failed", TERMINATED.to_string()),
            None => (
                &plan.on_success,
                "Succeeded",
                "successfully synced (all tasks run)".to_string(),
            ),
            Some(m) if last_attempt => (&plan.on_failure, "Failed", m.clone()),
            Some(m) => (&none, "Failed", m.clone()),
        };
        for step in tail {
            let phase = match step {
                Step::Hook(h) => h.phase,
                _ => Phase::SyncFail,
            };
            if let Err(m) = self.step(step, phase, dry_run, &mut progress).await {
                tracing::warn!(error = %m, "after the sync");
            }
        }
        Outcome {
            phase: outcome_phase,
            message,
            resources: progress.resources,
            hooks: progress.hooks,
        }
    }

    /// Applies one resource: its `syncResult` entry and whether it worked.
    async fn apply(
        &self,
        a: &berth_engine::plan::ApplyStep,
        phase: Phase,
        dry_run: bool,
    ) -> (Value, Result<(), String>) {
        let Some(obj) = self.desired.get(&a.object) else {
            let message = format!("{}: not in the desired objects", a.object);
            return (
                result(&a.object, phase, "SyncFailed", message.clone(), false),
                Err(message),
            );
        };
        use berth_engine::plan::ApplyStrategy;
        let replace = matches!(
            a.options.strategy,
            ApplyStrategy::Create | ApplyStrategy::Replace | ApplyStrategy::Update
        );
        // Fields an earlier applier (Argo CD, kubectl's client-side apply)
        // owns become Berth's first, so a field later removed from Git is
        // removed from the cluster.
        if !dry_run
            && !replace
            && let Err(e) = self
                .applier
                .take_over(self.types, self.live.get(&a.object).unwrap_or(obj))
                .await
        {
            tracing::warn!(object = %a.object, error = %e, "taking over field ownership");
        }
        let mut done = self.apply_with(self.types, obj, replace, dry_run).await;
        // A type the sync itself installs (a CRD in an earlier wave) is
        // served once its definition is established: discover again, for
        // up to 10 s.
        let mut tries = 0;
        while matches!(
            done,
            Err(berth_cluster::apply::ApplyError::UnknownType { .. })
        ) && tries < 50
            && !dry_run
        {
            tries += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Ok(fresh) = ResourceTypes::discover(self.applier.client()).await {
                done = self.apply_with(&fresh, obj, replace, dry_run).await;
            }
        }
        let mut verb = if replace {
            "replaced"
        } else {
            "serverside-applied"
        };
        // `Force=true`: a change the API server refuses as invalid (an
        // immutable field) is made by deleting and creating the object.
        if a.options.force
            && !dry_run
            && matches!(
                done,
                Err(berth_cluster::apply::ApplyError::Refused { code: 422, .. })
            )
        {
            let recreated = async {
                let live = self.applier.get(self.types, obj).await?;
                if let Some(live) = live {
                    self.applier
                        .delete(self.types, &live, ClusterPropagation::Foreground)
                        .await?;
                }
                Ok::<_, berth_cluster::apply::ApplyError>(())
            }
            .await;
            done = match recreated {
                Err(e) => Err(e),
                Ok(()) => match self.wait_deleted(&a.object).await {
                    Err(m) => Err(berth_cluster::apply::ApplyError::Malformed {
                        object: a.object.to_string(),
                        message: m,
                    }),
                    Ok(()) => self.applier.replace(self.types, obj, false).await,
                },
            };
            verb = "recreated";
        }
        match done {
            Ok(_) => (
                result(
                    &a.object,
                    phase,
                    "Synced",
                    format!("{} {} {verb}", a.object.kind.to_lowercase(), a.object.name),
                    false,
                ),
                Ok(()),
            ),
            Err(e) => (
                result(&a.object, phase, "SyncFailed", e.to_string(), false),
                Err(e.to_string()),
            ),
        }
    }

    async fn apply_with(
        &self,
        types: &ResourceTypes,
        obj: &Value,
        replace: bool,
        dry_run: bool,
    ) -> Result<Value, berth_cluster::apply::ApplyError> {
        if replace {
            return self.applier.replace(types, obj, dry_run).await;
        }
        // Git owns what it declares: conflicts with other field managers
        // are resolved in Git's favour, as Argo CD's server-side apply does
        // (`--force-conflicts`).
        let opts = ClusterApply {
            force: true,
            dry_run,
        };
        self.applier.apply(types, obj, opts).await
    }

    /// Whether termination was asked for.
    pub fn cancelled(&self) -> bool {
        self.cancel.is_some_and(|c| c.load(Ordering::Relaxed))
    }

    async fn step(
        &self,
        step: &Step,
        phase: Phase,
        dry_run: bool,
        progress: &mut Progress,
    ) -> Result<(), String> {
        match step {
            Step::EnsureNamespace(ns) => {
                if !ns.create || dry_run {
                    return Ok(());
                }
                let mut obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name}});
                if let Some(meta) = &ns.metadata {
                    obj["metadata"]["labels"] = json!(meta.labels);
                    obj["metadata"]["annotations"] = json!(meta.annotations);
                }
                self.applier
                    .apply(self.types, &obj, ClusterApply::default())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Step::Apply(a) => {
                let (r, outcome) = self.apply(a, phase, dry_run).await;
                progress.resources.push(r);
                outcome
            }
            Step::Hook(h) => {
                let Some(obj) = self.desired.get(&h.object) else {
                    return Err(format!("{}: not in the desired objects", h.object));
                };
                let mut obj = obj.clone();
                let mut named = h.object.clone();
                if let Some(prefix) = &h.object.generate_name {
                    let name = berth_engine::plan::generated_hook_name(
                        prefix,
                        &self.revision,
                        h.phase,
                        self.started_at,
                    );
                    obj["metadata"]["name"] = json!(name);
                    named.name = name;
                    named.generate_name = None;
                    progress.names.insert(h.object.clone(), named.clone());
                }
                if dry_run {
                    return Ok(());
                }
                if self.done_hooks.contains(&named.name) {
                    progress.resources.push(result(
                        &named,
                        h.phase,
                        "Synced",
                        "completed before the controller restarted".into(),
                        true,
                    ));
                    return Ok(());
                }
                if !self.operation.is_empty() {
                    obj["metadata"]["annotations"][OPERATION_ANNOTATION] = json!(self.operation);
                }
                let opts = ClusterApply {
                    force: true,
                    dry_run: false,
                };
                if let Err(e) = self.applier.apply(self.types, &obj, opts).await {
                    progress.resources.push(result(
                        &named,
                        h.phase,
                        "SyncFailed",
                        e.to_string(),
                        true,
                    ));
                    return Err(e.to_string());
                }
                progress.hooks.push(named.clone());
                // A hook must finish before the sync goes on.
                match self.wait_healthy(&named, true).await {
                    Ok(message) => {
                        progress
                            .resources
                            .push(result(&named, h.phase, "Synced", message, true));
                        Ok(())
                    }
                    Err(message) => {
                        progress.resources.push(result(
                            &named,
                            h.phase,
                            "SyncFailed",
                            message.clone(),
                            true,
                        ));
                        Err(format!("{} hook {} failed: {message}", h.phase, named))
                    }
                }
            }
            Step::Prune(p) => {
                if dry_run || p.requires_confirmation {
                    progress.resources.push(result(
                        &p.object,
                        phase,
                        "PruneSkipped",
                        "ignored (requires pruning)".into(),
                        false,
                    ));
                    return Ok(());
                }
                let target = self
                    .live
                    .get(&p.object)
                    .cloned()
                    .unwrap_or_else(|| address(&p.object));
                match self
                    .applier
                    .delete(self.types, &target, propagation(p.propagation))
                    .await
                {
                    Ok(()) => {
                        progress.resources.push(result(
                            &p.object,
                            phase,
                            "Pruned",
                            "pruned".into(),
                            false,
                        ));
                        Ok(())
                    }
                    Err(e) => {
                        progress.resources.push(result(
                            &p.object,
                            phase,
                            "SyncFailed",
                            e.to_string(),
                            false,
                        ));
                        Err(e.to_string())
                    }
                }
            }
            Step::Delete(d) => {
                if dry_run || d.requires_confirmation {
                    return Ok(());
                }
                let target = self
                    .live
                    .get(&d.object)
                    .cloned()
                    .unwrap_or_else(|| address(&d.object));
                self.applier
                    .delete(self.types, &target, propagation(d.propagation))
                    .await
                    .map_err(|e| e.to_string())
            }
            Step::DeleteHook(d) => {
                if dry_run {
                    return Ok(());
                }
                let named = progress
                    .names
                    .get(&d.object)
                    .cloned()
                    .unwrap_or_else(|| d.object.clone());
                if named.name.is_empty() {
                    return Ok(());
                }
                // A hook this same operation created (it is resuming after
                // the controller died) is not deleted to be run again.
                if d.policy == berth_engine::plan::DeletePolicy::BeforeHookCreation
                    && !self.operation.is_empty()
                    && let Ok(Some(live)) = self.applier.get(self.types, &address(&named)).await
                    && live
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(OPERATION_ANNOTATION))
                        .and_then(Value::as_str)
                        == Some(self.operation.as_str())
                {
                    return Ok(());
                }
                self.applier
                    .delete(self.types, &address(&named), propagation(d.propagation))
                    .await
                    .map_err(|e| e.to_string())
            }
            Step::Wait(b) => {
                if dry_run {
                    return Ok(());
                }
                for o in &b.healthy {
                    self.wait_healthy(o, false).await?;
                }
                for o in &b.hooks_completed {
                    let named = progress.names.get(o).cloned().unwrap_or_else(|| o.clone());
                    self.wait_healthy(&named, true).await?;
                }
                for o in &b.deleted {
                    self.wait_deleted(o).await?;
                }
                Ok(())
            }
        }
    }

    /// Removes the hooks a failed attempt left, so the next attempt runs
    /// them afresh (their default delete policy, BeforeHookCreation).
    pub async fn remove_hooks(&self, hooks: &[ObjectRef]) {
        for h in hooks {
            if let Err(e) = self
                .applier
                .delete(self.types, &address(h), ClusterPropagation::Background)
                .await
            {
                tracing::warn!(hook = %h, error = %e, "removing a failed hook before the retry");
            }
            if let Err(e) = self.wait_deleted(h).await {
                tracing::warn!(hook = %h, error = %e, "removing a failed hook before the retry");
            }
        }
    }

    /// Waits until the object is Healthy (or has no health check);
    /// Degraded fails, as does the time limit.
    async fn wait_healthy(&self, o: &ObjectRef, hook: bool) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + self.wait_limit;
        let mut last;
        loop {
            match self.applier.get(self.types, &address(o)).await {
                Ok(Some(live)) => match self.checks.check(&live) {
                    None => return Ok(String::new()),
                    Some(h) if h.status == Status::Healthy => return Ok(h.message),
                    Some(h) if h.status == Status::Degraded => {
                        return Err(format!("{o} is Degraded: {}", h.message));
                    }
                    Some(h) if hook && h.status == Status::Suspended => {
                        return Err(format!("{o} is Suspended: {}", h.message));
                    }
                    Some(h) => last = format!("{} {}", h.status, h.message),
                },
                Ok(None) => last = "not found".into(),
                Err(e) => last = e.to_string(),
            }
            if self.cancelled() {
                return Err(TERMINATED.to_string());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{o} not healthy after {:?}: {last}",
                    self.wait_limit
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_deleted(&self, o: &ObjectRef) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + self.wait_limit;
        loop {
            if let Ok(None) = self.applier.get(self.types, &address(o)).await {
                return Ok(());
            }
            if self.cancelled() {
                return Err(TERMINATED.to_string());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("{o} still exists after {:?}", self.wait_limit));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_groups_follow_phases_and_waves() {
        let layout: Vec<(String, i64)> = [
            ("PreSync", 0),
            ("Sync", -1),
            ("Sync", 0),
            ("Sync", 0),
            ("PostSync", 0),
        ]
        .into_iter()
        .map(|(p, w)| (p.to_string(), w))
        .collect();
        let g = groups(&layout, 3);
        let summary: Vec<(String, i64, usize, usize)> = g
            .into_iter()
            .map(|g| (g.phase, g.wave, g.done, g.total))
            .collect();
        assert_eq!(
            summary,
            [
                ("PreSync".to_string(), 0, 1, 1),
                ("Sync".to_string(), -1, 1, 1),
                ("Sync".to_string(), 0, 1, 2),
                ("PostSync".to_string(), 0, 0, 1),
            ]
        );
    }
}
