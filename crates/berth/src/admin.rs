//! `berth admin`: the engine offline, on files, for people debugging health
//! scripts, diffs and sync plans, and for checking compatibility with Argo
//! CD without a cluster.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_engine::diff::{DiffOptions, IgnoreRule, ResourceDiff, SyncStatus};
use berth_engine::health::HealthChecks;
use berth_engine::settings::Settings;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

/// `berth admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Print the health of each object in the files, one line per object in
    /// input order, as the controller would judge it.
    Health(HealthArgs),
    /// Compare live objects with desired ones as the controller does
    /// (normalized, Secret values masked). Exit 0: same, 1: different,
    /// 2: error, as `kubectl diff`.
    Diff(DiffArgs),
    /// Print the sync plan for desired objects (and the live ones, when
    /// given): phases, waves, hooks, apply and prune steps, and every
    /// problem found in annotations and options. Exit 1 when the plan has
    /// errors.
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Desired objects (for example `berth render` output).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Live objects of the application; those not in the desired set are
    /// prune candidates.
    #[arg(long, value_name = "FILE")]
    live: Option<PathBuf>,
    /// The application's sync options (`spec.syncPolicy.syncOptions`),
    /// `Key=Value`; repeat for several.
    #[arg(long = "sync-option", value_name = "KEY=VALUE")]
    sync_options: Vec<String>,
    /// Prune objects that are no longer in Git.
    #[arg(long)]
    prune: bool,
    /// A forced sync (delete and re-create what cannot be patched).
    #[arg(long)]
    force: bool,
    /// The destination namespace (`spec.destination.namespace`).
    #[arg(
        short = 'n',
        long = "namespace",
        value_name = "NAMESPACE",
        default_value = ""
    )]
    namespace: String,
    /// Plan the application's deletion instead of a sync.
    #[arg(long)]
    delete: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    /// One line per object for people.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
struct HealthArgs {
    /// YAML or JSON files, several documents each; `-` reads stdin.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A directory of health scripts in Argo CD's layout
    /// (`<group>/<Kind>/health.lua`, group `_` for any group).
    #[arg(long, value_name = "DIR")]
    customizations: Option<PathBuf>,
    /// An `argocd-cm` ConfigMap manifest whose resource customizations
    /// apply (they take precedence over --customizations).
    #[arg(long, value_name = "FILE")]
    argocd_cm: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Debug, Args)]
struct DiffArgs {
    /// Live objects (for example `kubectl get -o yaml` output).
    #[arg(long, value_name = "FILE")]
    live: PathBuf,
    /// Desired objects (for example `berth render` output).
    #[arg(long, value_name = "FILE")]
    desired: PathBuf,
    /// `ignoreDifferences` entries: a YAML list, or an Application whose
    /// `spec.ignoreDifferences` is used.
    #[arg(long, value_name = "FILE")]
    ignore_differences: Option<PathBuf>,
    /// An `argocd-cm` ConfigMap manifest whose ignoreDifferences
    /// customizations and masked annotations apply.
    #[arg(long, value_name = "FILE")]
    argocd_cm: Option<PathBuf>,
    /// Output format: a unified diff per object, or one JSON object per
    /// object with the differing fields.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    output: Output,
}

/// Runs `berth admin`; the exit code depends on the command.
pub fn run(args: AdminArgs) -> ExitCode {
    let result = match args.command {
        AdminCommand::Health(a) => health(a).map(|()| ExitCode::SUCCESS),
        AdminCommand::Plan(a) => plan(a),
        AdminCommand::Diff(a) => match diff(a) {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("error: {}", crate::describe(&e));
                // Errors exit above 1, as `kubectl diff`.
                return ExitCode::from(2);
            }
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::describe(&e));
            ExitCode::from(1)
        }
    }
}

/// Reads objects from a file (or stdin for `-`), Lists expanded.
pub(crate) fn read_objects(path: &Path) -> Result<Vec<Value>> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    berth_render::manifest::parse_stream(&path.display().to_string(), &text)
        .with_context(|| format!("{} is not valid YAML or JSON", path.display()))
}

fn read_argocd_cm(path: &Path) -> Result<Settings> {
    let objects = read_objects(path)?;
    let cm = objects
        .iter()
        .find(|o| o.get("kind").and_then(Value::as_str) == Some("ConfigMap"))
        .with_context(|| format!("{}: no ConfigMap in the file", path.display()))?;
    let mut data = BTreeMap::new();
    if let Some(map) = cm.get("data").and_then(Value::as_object) {
        for (k, v) in map {
            let Some(s) = v.as_str() else {
                bail!("{}: data.{k} must be a string", path.display());
            };
            data.insert(k.clone(), s.to_string());
        }
    }
    Settings::from_configmap_data(&data).with_context(|| path.display().to_string())
}

/// Adds every `<group>/<Kind>/health.lua` under `dir`.
fn load_directory(checks: &mut HealthChecks, dir: &Path) -> Result<()> {
    let groups = std::fs::read_dir(dir)
        .with_context(|| format!("reading --customizations {}", dir.display()))?;
    for group in groups {
        let group = group?;
        if !group.file_type()?.is_dir() {
            continue;
        }
        for kind in std::fs::read_dir(group.path())? {
            let kind = kind?;
            let script = kind.path().join("health.lua");
            if script.is_file() {
                let source = std::fs::read_to_string(&script)
                    .with_context(|| format!("reading {}", script.display()))?;
                checks.add_directory(
                    &group.file_name().to_string_lossy(),
                    &kind.file_name().to_string_lossy(),
                    &script.display().to_string(),
                    &source,
                );
            }
        }
    }
    Ok(())
}

fn id_parts(obj: &Value) -> (String, String, String) {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

fn health(args: HealthArgs) -> Result<()> {
    let mut checks = HealthChecks::new();
    if let Some(dir) = &args.customizations {
        load_directory(&mut checks, dir)?;
    }
    if let Some(cm) = &args.argocd_cm {
        read_argocd_cm(cm)?.apply_health(&mut checks);
    }
    // Read every input first, so a bad file fails before any output.
    let mut objects = Vec::new();
    for f in &args.files {
        objects.extend(read_objects(f)?);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for obj in &objects {
        let (kind, namespace, name) = id_parts(obj);
        let h = checks.check(obj);
        match args.output {
            Output::Json => {
                let line = json!({
                    "kind": kind,
                    "namespace": namespace,
                    "name": name,
                    "status": h.as_ref().map(|h| h.status.to_string()),
                    "message": h.as_ref().map(|h| h.message.clone()).unwrap_or_default(),
                });
                writeln!(out, "{line}")?;
            }
            Output::Text => {
                let who = if namespace.is_empty() {
                    format!("{kind}/{name}")
                } else {
                    format!("{kind}/{namespace}/{name}")
                };
                match h {
                    Some(h) if h.message.is_empty() => writeln!(out, "{who}\t{}", h.status)?,
                    Some(h) => writeln!(out, "{who}\t{}\t{}", h.status, h.message)?,
                    None => writeln!(out, "{who}\t-")?,
                }
            }
        }
    }
    Ok(())
}

fn key(obj: &Value) -> String {
    let (group, kind) = berth_api::kinds::group_kind(obj);
    let (_, ns, name) = id_parts(obj);
    format!("{group}/{kind}/{ns}/{name}")
}

fn read_ignore_file(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value = serde_saphyr::from_str(&text)
        .with_context(|| format!("{} is not valid YAML", path.display()))?;
    match doc {
        Value::Array(items) => Ok(items),
        Value::Object(ref o) if o.get("kind").and_then(Value::as_str) == Some("Application") => {
            Ok(doc
                .pointer("/spec/ignoreDifferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default())
        }
        _ => bail!(
            "{}: expected a list of ignoreDifferences entries or an Application",
            path.display()
        ),
    }
}

fn diff(args: DiffArgs) -> Result<ExitCode> {
    let mut opts = DiffOptions {
        field_manager: "berth".into(),
        ..DiffOptions::default()
    };
    if let Some(file) = &args.ignore_differences {
        let entries = read_ignore_file(file)?;
        opts.ignore =
            IgnoreRule::parse_list(&entries).with_context(|| file.display().to_string())?;
    }
    if let Some(cm) = &args.argocd_cm {
        let settings = read_argocd_cm(cm)?;
        opts.ignore.extend(
            settings
                .ignore_rules()
                .with_context(|| cm.display().to_string())?,
        );
        opts.mask_annotations = settings.mask_annotations;
    }
    let desired = read_objects(&args.desired)?;
    let live = read_objects(&args.live)?;
    let mut live_by_key: BTreeMap<String, &Value> = live.iter().map(|o| (key(o), o)).collect();
    let mut diffs: Vec<ResourceDiff> = Vec::new();
    for d in &desired {
        let l = live_by_key.remove(&key(d));
        diffs.push(berth_engine::diff::diff(Some(d), l, None, &opts)?);
    }
    // Live objects Git does not have, in the order given.
    for l in &live {
        if live_by_key.contains_key(&key(l)) {
            diffs.push(berth_engine::diff::diff(None, Some(l), None, &opts)?);
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for d in &diffs {
        match args.output {
            Output::Json => writeln!(out, "{}", serde_json::to_string(d)?)?,
            Output::Text => {
                if d.status != SyncStatus::Synced {
                    out.write_all(d.unified().as_bytes())?;
                }
            }
        }
    }
    let same = diffs.iter().all(|d| d.status == SyncStatus::Synced);
    Ok(if same {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn plan(args: PlanArgs) -> Result<ExitCode> {
    use berth_engine::plan::{self, DeletionInput, Resource, SyncInput};
    let mut desired = Vec::new();
    for f in &args.files {
        desired.extend(read_objects(f)?);
    }
    let live = match &args.live {
        Some(f) => read_objects(f)?,
        None => Vec::new(),
    };
    let opts = DiffOptions {
        field_manager: "berth".into(),
        ..DiffOptions::default()
    };
    let mut live_by_key: BTreeMap<String, &Value> = live.iter().map(|o| (key(o), o)).collect();
    let mut resources = Vec::new();
    for d in &desired {
        resources.push(match live_by_key.remove(&key(d)) {
            Some(l) => {
                let in_sync = berth_engine::diff::diff(Some(d), Some(l), None, &opts)?.status
                    == SyncStatus::Synced;
                Resource::existing(d.clone(), l.clone(), in_sync)
            }
            None => Resource::desired(d.clone()),
        });
    }
    for l in &live {
        if live_by_key.contains_key(&key(l)) {
            resources.push(Resource::extraneous(l.clone()));
        }
    }
    let namespace_exists = live.iter().any(|o| {
        o.get("kind").and_then(Value::as_str) == Some("Namespace")
            && o.pointer("/metadata/name").and_then(Value::as_str) == Some(args.namespace.as_str())
    });
    let result = if args.delete {
        plan::plan_deletion(&DeletionInput {
            resources,
            sync_options: args.sync_options,
            destination_namespace: args.namespace,
            ..DeletionInput::default()
        })
    } else {
        plan::plan_sync(&SyncInput {
            resources,
            sync_options: args.sync_options,
            prune: args.prune,
            force: args.force,
            destination_namespace: args.namespace,
            namespace_exists,
            ..SyncInput::default()
        })
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&result)?),
        Output::Text => print!("{}", result.render_text()),
    }
    match result.validate() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(plan::Error::Invalid { count, .. }) => {
            // The errors themselves are part of the plan printed above.
            eprintln!("error: the plan has {count} error(s); nothing would be synced");
            Ok(ExitCode::from(1))
        }
    }
}
