//! `berth login`, `berth logout`, `berth version` and `berth app ...`: the
//! API server's client commands.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{Api, ClientConfig, answer};

/// Output formats, as kubectl names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A table for people.
    Table,
    /// A table with more columns.
    Wide,
    /// JSON, stable for scripts.
    Json,
    /// YAML.
    Yaml,
    /// Names only.
    Name,
}

/// Arguments of `berth login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server's URL, e.g. http://127.0.0.1:8080.
    server: String,
    /// User name.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Password (prefer --password-stdin: arguments are visible to other
    /// users of the machine).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    password_stdin: bool,
    /// Log in through the server's single sign-on (OIDC): prints a URL to
    /// open in a browser and waits for the login to come back.
    #[arg(long, conflicts_with_all = ["password", "password_stdin"])]
    sso: bool,
    /// The local port the browser returns to (0: any free one).
    #[arg(long, default_value_t = 8085, requires = "sso")]
    sso_port: u16,
}

/// Arguments of `berth app`.
#[derive(Debug, Args)]
pub struct AppArgs {
    #[command(subcommand)]
    command: AppCommand,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// List applications.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
        /// Only these projects (repeatable).
        #[arg(short = 'p', long = "project")]
        projects: Vec<String>,
        /// Label selector, e.g. team=web.
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Show one application.
    Get {
        /// The application.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
        /// Compare with Git again first.
        #[arg(long)]
        refresh: bool,
        /// Render again and compare, bypassing caches.
        #[arg(long, conflicts_with = "refresh")]
        hard_refresh: bool,
    },
    /// Sync an application and wait for the result.
    Sync {
        /// The application.
        name: String,
        /// Sync to this branch, tag or commit instead of the target revision.
        #[arg(long)]
        revision: Option<String>,
        /// Delete resources no longer in Git.
        #[arg(long)]
        prune: bool,
        /// Ask the API server what would happen; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only these resources, as GROUP:KIND:NAME (repeatable).
        #[arg(long = "resource")]
        resources: Vec<String>,
        /// Return once the sync is requested.
        #[arg(long = "async")]
        no_wait: bool,
        /// For an app that needs approvals: wait for the decision and the
        /// sync (exit 1 when the request is rejected, expires or the sync
        /// fails); without it the command returns once the request is open.
        #[arg(long, conflicts_with = "no_wait")]
        wait: bool,
        /// Break glass: sync an app that needs approvals without them,
        /// giving the reason (RBAC action `override`; recorded and
        /// announced).
        #[arg(long, value_name = "REASON")]
        override_approval: Option<String>,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// The sync requests of an app that needs approvals, with what each
    /// would change and the decisions so far.
    Approvals {
        /// The application.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Approve a sync request (RBAC action `approve`).
    Approve {
        /// The application.
        name: String,
        /// The request (`berth app approvals NAME` lists them).
        #[arg(long)]
        request: String,
        /// A comment kept with the decision.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Reject a sync request: it is closed.
    Reject {
        /// The application.
        name: String,
        /// The request.
        #[arg(long)]
        request: String,
        /// Why (required).
        #[arg(long)]
        comment: String,
    },
    /// Roll back to a history entry (refused while automated sync is on).
    Rollback {
        /// The application.
        name: String,
        /// The history entry's id (`berth app get NAME -o json` shows the history).
        id: i64,
        /// Delete resources not in that revision.
        #[arg(long)]
        prune: bool,
    },
    /// Compare with Git again now (`--hard`: render again, bypassing caches).
    Refresh {
        /// The application.
        name: String,
        /// A hard refresh.
        #[arg(long)]
        hard: bool,
    },
    /// Terminate the running operation.
    TerminateOp {
        /// The application.
        name: String,
    },
    /// Create an application from a manifest (YAML or JSON).
    Create {
        /// The Application manifest.
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
        /// Replace the spec of an existing application of that name.
        #[arg(long)]
        upsert: bool,
    },
    /// Delete an application.
    Delete {
        /// The application.
        name: String,
        /// Also delete its resources (`--cascade=false` keeps them).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        cascade: bool,
        /// How the resources' dependents go: foreground (they first) or
        /// background.
        #[arg(long, value_parser = ["foreground", "background"])]
        propagation_policy: Option<String>,
    },
    /// The syncs recorded in the application's history.
    History {
        /// The application.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// What a sync would change: a unified diff of live and target for
    /// every differing object (exit 0 same, 1 different, 2 error, as
    /// kubectl diff).
    Diff {
        /// The application.
        name: String,
        /// Compare with this branch, tag or commit instead of the target
        /// revision ("what would this change do").
        #[arg(long, conflicts_with = "request")]
        revision: Option<String>,
        /// Show exactly what the sync request would apply, as recorded
        /// when it was opened.
        #[arg(long)]
        request: Option<String>,
        /// Render this local directory (the app's own, as its repoURL and
        /// path would give) with the app's source options and compare it
        /// with the live objects, before committing.
        #[arg(long, conflicts_with_all = ["request", "revision"])]
        local: Option<std::path::PathBuf>,
    },
    /// The application's resources and what they own (Deployment →
    /// ReplicaSet → Pod), with health.
    Resources {
        /// The application.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Resource actions (restart a Deployment, ...): list what the app's
    /// resources offer, or run one.
    #[command(subcommand)]
    Actions(ActionsCommand),
    /// The manifests: rendered from Git (`--source git`, the default) or
    /// as live in the cluster (`--source live`); Secret values masked.
    Manifests {
        /// The application.
        name: String,
        /// git or live.
        #[arg(long, default_value = "git", value_parser = ["git", "live"])]
        source: String,
        /// Render this branch, tag or commit instead of the target revision.
        #[arg(long)]
        revision: Option<String>,
    },
    /// Wait until the application is Synced and/or Healthy (for pipelines).
    Wait {
        /// The application.
        name: String,
        /// Wait for sync status Synced.
        #[arg(long)]
        sync: bool,
        /// Wait for health Healthy.
        #[arg(long)]
        health: bool,
        /// Give up after this many seconds (exit 1).
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `berth login`.
pub fn login(config: &Path, args: LoginArgs) -> Result<()> {
    if args.sso {
        let server = args.server.trim_end_matches('/').to_string();
        let token = sso_login(&server, args.sso_port)?;
        let mut c = ClientConfig::load(config)?;
        c.login(&server, &token);
        c.save(config)?;
        println!("logged in to {server} through single sign-on");
        return Ok(());
    }
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut p = String::new();
            std::io::stdin()
                .read_to_string(&mut p)
                .context("reading the password from standard input")?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => bail!("give --password-stdin (or --password)"),
    };
    let server = args.server.trim_end_matches('/').to_string();
    let token = runtime()?.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{server}/api/v1/session"))
            .json(&json!({"username": args.username, "password": password}))
            .send()
            .await
            .with_context(|| format!("cannot reach the Berth server at {server}"))?;
        let body = answer(response).await?;
        body.get("token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .context("the server's answer has no token")
    })?;
    let mut c = ClientConfig::load(config)?;
    c.login(&server, &token);
    c.save(config)?;
    println!("logged in to {server} as {}", args.username);
    Ok(())
}

/// Single sign-on from the command line: a listener on a loopback port
/// receives the session the server sends back at the end of the browser's
/// login (`/auth/login?return_url=http://127.0.0.1:PORT/...`).
fn sso_login(server: &str, port: u16) -> Result<String> {
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).with_context(|| {
        format!("listening on 127.0.0.1:{port} for the login to come back (try --sso-port)")
    })?;
    let port = listener.local_addr()?.port();
    let return_url = format!("http://127.0.0.1:{port}/auth/callback");
    let url = format!("{server}/auth/login?return_url={}", encode(&return_url));
    eprintln!("open this address in a browser to log in:\n{url}");
    if std::io::stderr().is_terminal() {
        // Best effort: where there is no desktop the address above is there.
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    listener.set_nonblocking(false)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if Instant::now() > deadline {
            bail!("no login came back within 5 minutes");
        }
        let (mut stream, _) = listener.accept().context("waiting for the login")?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut line = String::new();
        std::io::BufReader::new(&stream).read_line(&mut line)?;
        let target = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let token = target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default()
            .split('&')
            .find_map(|p| p.strip_prefix("token="))
            .map(str::to_string);
        let (status, body) = match &token {
            Some(_) => ("200 OK", "Logged in to Berth. You may close this window."),
            None => ("400 Bad Request", "This is not a login coming back."),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        if let Some(t) = token {
            return Ok(t);
        }
    }
}

/// `berth logout`: forgets the current context's token.
pub fn logout(config: &Path) -> Result<()> {
    let mut c = ClientConfig::load(config)?;
    let current = c.current_context.clone();
    let Some(ctx) = c.contexts.iter().find(|x| x.name == current).cloned() else {
        bail!("not logged in");
    };
    for u in &mut c.users {
        if u.name == ctx.user {
            u.auth_token.clear();
        }
    }
    c.save(config)?;
    println!("logged out of {}", ctx.server);
    Ok(())
}

/// `berth version`: the client's, and the server's when logged in.
pub fn version(config: &Path) -> Result<()> {
    println!("berth: v{}", env!("CARGO_PKG_VERSION"));
    if let Ok(api) = Api::from_config(config) {
        let v = runtime()?.block_on(api.call(Method::GET, "/api/version", None))?;
        println!(
            "server ({}): {}",
            api.server(),
            v.get("Version")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
        );
    }
    Ok(())
}

pub(crate) fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

pub(crate) fn print_table(rows: &[Vec<String>]) {
    let mut widths = vec![0; rows.first().map(Vec::len).unwrap_or(0)];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
}

pub(crate) fn print_value(v: &Value, output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(v)?),
        _ => {}
    }
    Ok(())
}

fn policy(a: &Value) -> &'static str {
    if a.pointer("/spec/syncPolicy/automated")
        .is_some_and(Value::is_object)
    {
        "Auto"
    } else {
        "Manual"
    }
}

/// An Application's name as commands take it: `namespace/name` outside
/// the default control namespace.
pub(crate) fn qualified_name(a: &Value) -> String {
    match text(a, "/metadata/namespace") {
        "" | berth_api::crds::CONTROL_NAMESPACE => text(a, "/metadata/name").to_string(),
        ns => format!("{ns}/{}", text(a, "/metadata/name")),
    }
}

fn app_row(a: &Value, wide: bool) -> Vec<String> {
    let project = match text(a, "/spec/project") {
        "" => "default",
        p => p,
    };
    let mut row = vec![
        qualified_name(a),
        project.to_string(),
        text(a, "/status/sync/status").to_string(),
        text(a, "/status/health/status").to_string(),
        policy(a).to_string(),
        text(a, "/spec/destination/namespace").to_string(),
    ];
    if wide {
        row.extend([
            text(a, "/spec/source/repoURL").to_string(),
            text(a, "/spec/source/path").to_string(),
            text(a, "/spec/source/targetRevision").to_string(),
            text(a, "/status/sync/revision").chars().take(12).collect(),
        ]);
    }
    row
}

fn header(wide: bool) -> Vec<String> {
    let mut h: Vec<String> = [
        "NAME",
        "PROJECT",
        "SYNC",
        "HEALTH",
        "SYNCPOLICY",
        "NAMESPACE",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if wide {
        h.extend(
            ["REPO", "PATH", "TARGET", "REVISION"]
                .iter()
                .map(|s| s.to_string()),
        );
    }
    h
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `berth app diff --local DIR`: renders the directory as the app's
/// source would be rendered, on this machine, and compares it with the
/// live objects the server reports. Without the server's dry run, a field
/// removed from the local files shows only when Git's version set it
/// through an earlier apply the live object records; Secret values are
/// compared masked. Returns whether anything differs.
fn local_diff(
    rt: &tokio::runtime::Runtime,
    api: &crate::client::Api,
    name: &str,
    dir: &std::path::Path,
) -> anyhow::Result<bool> {
    use anyhow::Context as _;
    let base = format!("/api/v1/applications/{}", encode(name));
    let raw = rt.block_on(api.call(Method::GET, &base, None))?;
    let app = berth_api::application::Application::from_value(
        &format!("Application {name}"),
        raw.clone(),
    )?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("--local {}", dir.display()))?;
    let control = text(&raw, "/metadata/namespace").to_string();
    let settings = berth_controller::source::RenderSettings::new(
        if control.is_empty() {
            "argocd"
        } else {
            &control
        },
        berth_api::tracking::Method::Annotation,
    );
    let cache = crate::render::repo_cache()?;
    let sources = berth_controller::source::Sources::direct(
        &cache,
        crate::render::cache_dir().join("charts"),
        crate::render::DEFAULT_KUBE_VERSION.into(),
    );
    let work = crate::render::scratch_dir()?;
    let rendered = berth_controller::source::render_local(&app, &dir, &sources, &settings, &work);
    let _ = std::fs::remove_dir_all(&work);
    let desired = rendered.with_context(|| format!("rendering {}", dir.display()))?;
    let managed = rt.block_on(api.call(Method::GET, &format!("{base}/managed-resources"), None))?;
    let key = |o: &Value| {
        let (group, kind) = berth_api::kinds::group_kind(o);
        format!(
            "{group}/{kind}/{}/{}",
            text(o, "/metadata/namespace"),
            text(o, "/metadata/name")
        )
    };
    let mut live: Vec<(String, Value)> = managed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| serde_json::from_str::<Value>(i["liveState"].as_str()?).ok())
        .filter(|l| l.is_object())
        .map(|l| (key(&l), l))
        .collect();
    let opts = berth_engine::diff::DiffOptions {
        field_manager: "berth".into(),
        ..berth_engine::diff::DiffOptions::default()
    };
    let color = std::io::stdout().is_terminal();
    let mut out = std::io::stdout().lock();
    let mut different = false;
    let mut show = |d: berth_engine::diff::ResourceDiff| -> anyhow::Result<()> {
        if d.status != berth_engine::diff::SyncStatus::Synced {
            different = true;
            write_diff(&mut out, &d.unified(), color)?;
        }
        Ok(())
    };
    for d in &desired {
        let k = key(d);
        let l = live
            .iter()
            .position(|(lk, _)| *lk == k)
            .map(|i| live.remove(i).1);
        // Compared as the server shows them: Secret values masked.
        let d = berth_engine::diff::masked(d);
        show(berth_engine::diff::diff(Some(&d), l.as_ref(), None, &opts)?)?;
    }
    // What the local files no longer have would be pruned.
    for (_, l) in &live {
        show(berth_engine::diff::diff(None, Some(l), None, &opts)?)?;
    }
    Ok(different)
}

/// `berth app actions`.
#[derive(Debug, Subcommand)]
enum ActionsCommand {
    /// The actions the app's resources offer (those matching the filters).
    List {
        /// The application.
        name: String,
        #[command(flatten)]
        filter: ResourceFilter,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Run an action on the app's resource that matches the filters
    /// (`--all` for every match).
    Run {
        /// The application.
        name: String,
        /// The action, e.g. restart.
        action: String,
        #[command(flatten)]
        filter: ResourceFilter,
        /// Run it on every matching resource.
        #[arg(long)]
        all: bool,
    },
}

/// Which of an app's resources an action command concerns.
#[derive(Debug, clap::Args)]
struct ResourceFilter {
    /// Kind, e.g. Deployment.
    #[arg(long)]
    kind: Option<String>,
    /// API group (empty for the core group).
    #[arg(long)]
    group: Option<String>,
    /// Resource name.
    #[arg(long = "resource-name")]
    resource_name: Option<String>,
    /// Resource namespace.
    #[arg(long)]
    namespace: Option<String>,
}

impl ResourceFilter {
    fn matches(&self, r: &Value) -> bool {
        let is = |want: &Option<String>, field: &str| {
            want.as_deref().is_none_or(|w| text(r, field) == w)
        };
        is(&self.kind, "/kind")
            && is(&self.group, "/group")
            && is(&self.resource_name, "/name")
            && is(&self.namespace, "/namespace")
    }
}

/// The query naming one resource, as the actions routes take it.
fn resource_query(r: &Value) -> String {
    format!(
        "namespace={}&resourceName={}&group={}&kind={}",
        encode(text(r, "/namespace")),
        encode(text(r, "/name")),
        encode(text(r, "/group")),
        encode(text(r, "/kind"))
    )
}

/// How a command ended, beyond success.
pub enum Exit {
    /// Exit 0.
    Ok,
    /// Exit 1: a sync failed, a wait timed out, a diff found differences.
    Failed,
    /// Exit 2 after printing the error: kubectl diff's code for "could not
    /// compare".
    Error(anyhow::Error),
}

impl From<bool> for Exit {
    fn from(ok: bool) -> Exit {
        if ok { Exit::Ok } else { Exit::Failed }
    }
}

/// `berth app ...`. A failed sync is not an error of the command, but
/// exits 1.
pub fn run(config: &Path, args: AppArgs) -> Result<Exit> {
    let api = Api::from_config(config)?;
    let rt = runtime()?;
    match args.command {
        AppCommand::List {
            output,
            projects,
            selector,
        } => {
            let mut query = Vec::new();
            for p in &projects {
                query.push(format!("projects={}", encode(p)));
            }
            if let Some(s) = &selector {
                query.push(format!("selector={}", encode(s)));
            }
            let path = format!("/api/v1/applications?{}", query.join("&"));
            let list = rt.block_on(api.call(Method::GET, &path, None))?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            match output {
                Output::Json | Output::Yaml => print_value(&json!(items), output)?,
                Output::Name => {
                    for a in &items {
                        println!("{}", qualified_name(a));
                    }
                }
                Output::Table | Output::Wide => {
                    let wide = output == Output::Wide;
                    let mut rows = vec![header(wide)];
                    rows.extend(items.iter().map(|a| app_row(a, wide)));
                    print_table(&rows);
                }
            }
            Ok(Exit::Ok)
        }
        AppCommand::Get {
            name,
            output,
            refresh,
            hard_refresh,
        } => {
            let suffix = if hard_refresh {
                "?refresh=hard"
            } else if refresh {
                "?refresh=normal"
            } else {
                ""
            };
            let a = rt.block_on(api.call(
                Method::GET,
                &format!("/api/v1/applications/{}{suffix}", encode(&name)),
                None,
            ))?;
            match output {
                Output::Json | Output::Yaml => print_value(&a, output)?,
                Output::Name => println!("{}", qualified_name(&a)),
                Output::Table | Output::Wide => {
                    let wide = output == Output::Wide;
                    print_table(&[header(wide), app_row(&a, wide)]);
                    let resources = a["status"]["resources"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if !resources.is_empty() {
                        println!();
                        let mut rows = vec![
                            ["GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "HEALTH"]
                                .iter()
                                .map(|s| s.to_string())
                                .collect::<Vec<_>>(),
                        ];
                        for r in &resources {
                            rows.push(vec![
                                text(r, "/group").to_string(),
                                text(r, "/kind").to_string(),
                                text(r, "/namespace").to_string(),
                                text(r, "/name").to_string(),
                                text(r, "/status").to_string(),
                                text(r, "/health/status").to_string(),
                            ]);
                        }
                        print_table(&rows);
                    }
                    for c in a["status"]["conditions"].as_array().into_iter().flatten() {
                        println!("{}: {}", text(c, "/type"), text(c, "/message"));
                    }
                }
            }
            Ok(Exit::Ok)
        }
        AppCommand::Sync {
            name,
            revision,
            prune,
            dry_run,
            resources,
            no_wait,
            wait,
            override_approval,
            timeout,
        } => {
            let mut body = json!({"prune": prune, "dryRun": dry_run});
            if let Some(reason) = &override_approval {
                body["approvalOverride"] = json!(reason);
            }
            if let Some(r) = revision {
                body["revision"] = json!(r);
            }
            if !resources.is_empty() {
                let mut list = Vec::new();
                for r in &resources {
                    let parts: Vec<&str> = r.split(':').collect();
                    let [group, kind, name] = parts[..] else {
                        bail!(
                            "--resource {r:?}: expected GROUP:KIND:NAME (GROUP empty for core kinds, e.g. :ConfigMap:settings)"
                        );
                    };
                    list.push(json!({"group": group, "kind": kind, "name": name}));
                }
                body["resources"] = json!(list);
            }
            let path = format!("/api/v1/applications/{}", encode(&name));
            let answered =
                rt.block_on(api.call(Method::POST, &format!("{path}/sync"), Some(&body)))?;
            let gated = info_value(&answered, "berth.io/gated").as_deref() == Some("true");
            let request = info_value(&answered, "berth.io/request").filter(|_| gated);
            if let Some(id) = request.filter(|_| override_approval.is_none()) {
                return rt
                    .block_on(gated_sync(&api, &path, &name, &id, wait, timeout))
                    .map(Exit::from);
            }
            if no_wait {
                println!("sync of {name} requested");
                return Ok(Exit::Ok);
            }
            rt.block_on(wait_for_operation(
                &api,
                &path,
                &name,
                Duration::from_secs(timeout),
            ))
            .map(Exit::from)
        }
        AppCommand::Rollback { name, id, prune } => {
            let path = format!("/api/v1/applications/{}", encode(&name));
            rt.block_on(api.call(
                Method::POST,
                &format!("{path}/rollback"),
                Some(&json!({"id": id, "prune": prune})),
            ))?;
            rt.block_on(wait_for_operation(
                &api,
                &path,
                &name,
                Duration::from_secs(300),
            ))
            .map(Exit::from)
        }
        AppCommand::Create { file, upsert } => {
            let content = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let manifest: Value = serde_saphyr::from_str(&content)
                .with_context(|| format!("{}: not YAML or JSON", file.display()))?;
            let path = if upsert {
                "/api/v1/applications?upsert=true"
            } else {
                "/api/v1/applications"
            };
            let a = rt.block_on(api.call(Method::POST, path, Some(&manifest)))?;
            println!("application {} created", text(&a, "/metadata/name"));
            Ok(Exit::Ok)
        }
        AppCommand::Delete {
            name,
            cascade,
            propagation_policy,
        } => {
            let mut path = format!("/api/v1/applications/{}?cascade={cascade}", encode(&name));
            if let Some(p) = propagation_policy {
                path.push_str(&format!("&propagationPolicy={p}"));
            }
            rt.block_on(api.call(Method::DELETE, &path, None))?;
            println!("application {name} deleted");
            Ok(Exit::Ok)
        }
        AppCommand::History { name, output } => {
            let a = rt.block_on(api.call(
                Method::GET,
                &format!("/api/v1/applications/{}", encode(&name)),
                None,
            ))?;
            let history = a["status"]["history"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match output {
                Output::Json | Output::Yaml => print_value(&json!(history), output)?,
                _ => {
                    let mut rows = vec![
                        ["ID", "DATE", "REVISION", "INITIATED BY"]
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>(),
                    ];
                    for h in &history {
                        let by = h["initiatedBy"]["username"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| {
                                if h["initiatedBy"]["automated"] == true {
                                    "automated".into()
                                } else {
                                    String::new()
                                }
                            });
                        rows.push(vec![
                            h["id"].to_string(),
                            text(h, "/deployedAt").to_string(),
                            text(h, "/revision").to_string(),
                            by,
                        ]);
                    }
                    print_table(&rows);
                }
            }
            Ok(Exit::Ok)
        }
        AppCommand::Wait {
            name,
            sync,
            health,
            timeout,
        } => {
            let (sync, health) = if !sync && !health {
                (true, true)
            } else {
                (sync, health)
            };
            let path = format!("/api/v1/applications/{}", encode(&name));
            let start = Instant::now();
            loop {
                let a = rt.block_on(api.call(Method::GET, &path, None))?;
                let s = text(&a, "/status/sync/status").to_string();
                let h = text(&a, "/status/health/status").to_string();
                let pending = a.get("operation").is_some_and(|o| !o.is_null());
                if !pending && (!sync || s == "Synced") && (!health || h == "Healthy") {
                    println!("{name}: {s} {h}");
                    return Ok(Exit::Ok);
                }
                if start.elapsed() > Duration::from_secs(timeout) {
                    eprintln!("{name}: still {s} {h} after {timeout} s");
                    return Ok(Exit::Failed);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        AppCommand::Refresh { name, hard } => {
            let kind = if hard { "hard" } else { "normal" };
            rt.block_on(api.call(
                Method::GET,
                &format!("/api/v1/applications/{}?refresh={kind}", encode(&name)),
                None,
            ))?;
            println!("{kind} refresh of {name} requested");
            Ok(Exit::Ok)
        }
        AppCommand::Diff {
            name,
            request: Some(id),
            ..
        } => {
            let path = format!(
                "/api/v1/applications/{}/approvals/{}",
                encode(&name),
                encode(&id)
            );
            let r = match rt.block_on(api.call(Method::GET, &path, None)) {
                Ok(r) => r,
                Err(e) => return Ok(Exit::Error(e)),
            };
            let color = std::io::stdout().is_terminal();
            let mut out = std::io::stdout().lock();
            let mut different = false;
            for item in r["spec"]["summary"]["objects"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let diff = text(item, "/diff");
                if diff.is_empty() {
                    continue;
                }
                different = true;
                write_diff(&mut out, diff, color)?;
            }
            if r["spec"]["summary"]["truncated"] == true {
                writeln!(out, "# (the request lists only the first objects)")?;
            }
            Ok(if different { Exit::Failed } else { Exit::Ok })
        }
        AppCommand::Approvals { name, output } => {
            let path = format!("/api/v1/applications/{}/approvals", encode(&name));
            let list = rt.block_on(api.call(Method::GET, &path, None))?;
            match output {
                Output::Json | Output::Yaml => print_value(&list, output)?,
                Output::Name => {
                    for r in list["items"].as_array().into_iter().flatten() {
                        println!("{}", text(r, "/metadata/name"));
                    }
                }
                Output::Table | Output::Wide => {
                    if let Some(req) = list["requirement"].as_object() {
                        println!(
                            "needs {} approval(s): {}",
                            req.get("required").cloned().unwrap_or_default(),
                            req.get("gates")
                                .and_then(Value::as_array)
                                .map(|g| g
                                    .iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", "))
                                .unwrap_or_default()
                        );
                    } else {
                        println!("{name} needs no approvals (no ApprovalGate covers it)");
                    }
                    let mut rows = vec![
                        [
                            "REQUEST",
                            "PHASE",
                            "APPROVALS",
                            "REQUESTER",
                            "REVISION",
                            "CHANGES",
                            "EXPIRES",
                        ]
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                    ];
                    for r in list["items"].as_array().into_iter().flatten() {
                        let verdict = &r["status"]["verdict"];
                        let approvals = match (verdict.get("approvals"), verdict.get("required")) {
                            (Some(h), Some(n)) => format!("{h}/{n}"),
                            _ => verdict
                                .get("approvers")
                                .and_then(Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(Value::as_str)
                                        .collect::<Vec<_>>()
                                        .join(",")
                                })
                                .unwrap_or_default(),
                        };
                        let summary = &r["spec"]["summary"];
                        rows.push(vec![
                            text(r, "/metadata/name").to_string(),
                            text(r, "/status/phase").to_string(),
                            approvals,
                            text(r, "/spec/requester/username").to_string(),
                            r["spec"]["binding"]["revisions"][0]
                                .as_str()
                                .unwrap_or_default()
                                .chars()
                                .take(12)
                                .collect(),
                            format!(
                                "+{} ~{} -{}",
                                summary["create"], summary["update"], summary["prune"]
                            ),
                            text(r, "/spec/expiresAt").to_string(),
                        ]);
                    }
                    print_table(&rows);
                }
            }
            Ok(Exit::Ok)
        }
        AppCommand::Approve {
            name,
            request,
            comment,
        } => decide(&rt, &api, &name, &request, "approve", &comment),
        AppCommand::Reject {
            name,
            request,
            comment,
        } => decide(&rt, &api, &name, &request, "reject", &comment),
        AppCommand::Diff {
            name,
            local: Some(dir),
            ..
        } => match local_diff(&rt, &api, &name, &dir) {
            Ok(different) => Ok(if different { Exit::Failed } else { Exit::Ok }),
            Err(e) => Ok(Exit::Error(e)),
        },
        AppCommand::Diff { name, revision, .. } => {
            let mut path = format!("/api/v1/applications/{}/diff", encode(&name));
            if let Some(r) = &revision {
                path.push_str(&format!("?revision={}", encode(r)));
            }
            // kubectl diff's exit codes: an error is 2, not 1 (different).
            let d = match rt.block_on(api.call(Method::GET, &path, None)) {
                Ok(d) => d,
                Err(e) => return Ok(Exit::Error(e)),
            };
            let color = std::io::stdout().is_terminal();
            let mut out = std::io::stdout().lock();
            let mut different = false;
            for item in d["items"].as_array().into_iter().flatten() {
                let diff = text(item, "/diff");
                if diff.is_empty() {
                    continue;
                }
                different = true;
                write_diff(&mut out, diff, color)?;
            }
            Ok(if different { Exit::Failed } else { Exit::Ok })
        }
        AppCommand::Resources { name, output } => {
            let tree = rt.block_on(api.call(
                Method::GET,
                &format!("/api/v1/applications/{}/resource-tree", encode(&name)),
                None,
            ))?;
            let nodes = tree["nodes"].as_array().cloned().unwrap_or_default();
            match output {
                Output::Json | Output::Yaml => print_value(&tree, output)?,
                Output::Name => {
                    for n in &nodes {
                        println!("{}/{}", text(n, "/kind").to_lowercase(), text(n, "/name"));
                    }
                }
                _ => {
                    let mut rows = vec![
                        ["KIND", "NAMESPACE", "NAME", "HEALTH"]
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>(),
                    ];
                    tree_rows(&nodes, &mut rows);
                    print_table(&rows);
                }
            }
            Ok(Exit::Ok)
        }
        AppCommand::Actions(command) => {
            let name = match &command {
                ActionsCommand::List { name, .. } | ActionsCommand::Run { name, .. } => {
                    name.clone()
                }
            };
            let base = format!("/api/v1/applications/{}", encode(&name));
            let app = rt.block_on(api.call(Method::GET, &base, None))?;
            let resources: Vec<Value> = app["status"]["resources"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match command {
                ActionsCommand::List { filter, output, .. } => {
                    let mut found = Vec::new();
                    for r in resources.iter().filter(|r| filter.matches(r)) {
                        // Kinds without actions answer 400: skipped.
                        let Ok(v) = rt.block_on(api.call(
                            Method::GET,
                            &format!("{base}/resource/actions?{}", resource_query(r)),
                            None,
                        )) else {
                            continue;
                        };
                        for a in v["actions"].as_array().into_iter().flatten() {
                            found.push(json!({
                                "group": text(r, "/group"), "kind": text(r, "/kind"),
                                "namespace": text(r, "/namespace"), "name": text(r, "/name"),
                                "action": text(a, "/name"), "disabled": a["disabled"] == true,
                            }));
                        }
                    }
                    match output {
                        Output::Json | Output::Yaml => print_value(&json!(found), output)?,
                        Output::Name => {
                            for f in &found {
                                println!("{}", text(f, "/action"));
                            }
                        }
                        _ => {
                            let mut rows = vec![
                                ["GROUP", "KIND", "NAMESPACE", "NAME", "ACTION", "DISABLED"]
                                    .iter()
                                    .map(|s| s.to_string())
                                    .collect::<Vec<_>>(),
                            ];
                            for f in &found {
                                rows.push(vec![
                                    text(f, "/group").to_string(),
                                    text(f, "/kind").to_string(),
                                    text(f, "/namespace").to_string(),
                                    text(f, "/name").to_string(),
                                    text(f, "/action").to_string(),
                                    f["disabled"].to_string(),
                                ]);
                            }
                            print_table(&rows);
                        }
                    }
                    Ok(Exit::Ok)
                }
                ActionsCommand::Run {
                    action,
                    filter,
                    all,
                    ..
                } => {
                    let matching: Vec<&Value> =
                        resources.iter().filter(|r| filter.matches(r)).collect();
                    if matching.is_empty() {
                        anyhow::bail!(
                            "no resource of {name} matches (--kind, --group, --resource-name, --namespace); `berth app resources {name}` lists them"
                        );
                    }
                    if matching.len() > 1 && !all {
                        anyhow::bail!(
                            "{} resources of {name} match; name one with --resource-name (and --kind), or add --all",
                            matching.len()
                        );
                    }
                    for r in matching {
                        rt.block_on(api.call(
                            Method::POST,
                            &format!("{base}/resource/actions?{}", resource_query(r)),
                            Some(&json!(action)),
                        ))?;
                        println!(
                            "{action}: {} {}/{} done",
                            text(r, "/kind"),
                            text(r, "/namespace"),
                            text(r, "/name")
                        );
                    }
                    Ok(Exit::Ok)
                }
            }
        }
        AppCommand::Manifests {
            name,
            source,
            revision,
        } => {
            let base = format!("/api/v1/applications/{}", encode(&name));
            let objects: Vec<Value> = if source == "live" {
                let m =
                    rt.block_on(api.call(Method::GET, &format!("{base}/managed-resources"), None))?;
                m["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| i["liveState"].as_str())
                    .filter_map(|s| serde_json::from_str(s).ok())
                    .collect()
            } else {
                let mut path = format!("{base}/manifests");
                if let Some(r) = &revision {
                    path.push_str(&format!("?revision={}", encode(r)));
                }
                let m = rt.block_on(api.call(Method::GET, &path, None))?;
                m["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter_map(|s| serde_json::from_str(s).ok())
                    .collect()
            };
            for o in &objects {
                print!("---\n{}", serde_saphyr::to_string(o)?);
            }
            Ok(Exit::Ok)
        }
        AppCommand::TerminateOp { name } => {
            rt.block_on(api.call(
                Method::DELETE,
                &format!("/api/v1/applications/{}/operation", encode(&name)),
                None,
            ))?;
            println!("termination of {name}'s operation requested");
            Ok(Exit::Ok)
        }
    }
}

/// Follows the operation until it ends, from the server's event stream
/// (polling if the stream cannot be had): its phase and progress as they
/// change, each resource's result as it comes, then the results. Whether
/// it succeeded.
/// A unified diff, coloured on a terminal.
fn write_diff(out: &mut impl Write, diff: &str, color: bool) -> Result<()> {
    for line in diff.lines() {
        let painted = match line.as_bytes().first() {
            _ if !color => line.to_string(),
            Some(b'+') if !line.starts_with("+++") => format!("\u{1b}[32m{line}\u{1b}[0m"),
            Some(b'-') if !line.starts_with("---") => format!("\u{1b}[31m{line}\u{1b}[0m"),
            Some(b'@') => format!("\u{1b}[36m{line}\u{1b}[0m"),
            _ => line.to_string(),
        };
        writeln!(out, "{painted}")?;
    }
    Ok(())
}

/// An `operation.info` entry of an Application.
fn info_value(app: &Value, key: &str) -> Option<String> {
    app["operation"]["info"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == key)
        .and_then(|i| i["value"].as_str())
        .map(String::from)
}

/// `berth app approve|reject`.
fn decide(
    rt: &tokio::runtime::Runtime,
    api: &Api,
    name: &str,
    request: &str,
    decision: &str,
    comment: &str,
) -> Result<Exit> {
    let path = format!(
        "/api/v1/applications/{}/approvals/{}",
        encode(name),
        encode(request)
    );
    let r = rt.block_on(api.call(
        Method::POST,
        &path,
        Some(&json!({"decision": decision, "comment": comment})),
    ))?;
    let verdict = &r["status"]["verdict"];
    let state = verdict["state"].as_str().unwrap_or_default();
    let what = if decision == "approve" {
        "approved"
    } else {
        "rejected"
    };
    match (verdict.get("approvals"), verdict.get("required")) {
        (Some(h), Some(n)) if state == "Pending" => {
            println!("{what} {request} of {name}: {h} of {n} approvals")
        }
        _ => println!("{what} {request} of {name}: {state}"),
    }
    Ok(Exit::Ok)
}

/// A sync of a gated app opened `request`: says so and who may approve;
/// with `wait`, waits for the decision and then the sync.
async fn gated_sync(
    api: &Api,
    path: &str,
    name: &str,
    request: &str,
    wait: bool,
    timeout: u64,
) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let request_path = format!("{path}/approvals/{}", encode(request));
    // The controller opens the request a moment after the operation; if
    // it ran the operation instead (the gate went meanwhile), that is
    // followed.
    let mut opened = Value::Null;
    let opening = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline.min(opening) {
        if let Ok(r) = api.call(Method::GET, &request_path, None).await {
            opened = r;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if opened.is_null() {
        eprintln!("{name}: no request {request} was opened; following the operation");
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        return wait_for_operation(api, path, name, remaining).await;
    }
    let needed = &opened["status"]["verdict"]["required"];
    let gates: Vec<&str> = opened["spec"]["gates"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!("sync of {name} needs approval: request {request}");
    println!(
        "  {} approval(s) needed ({}), from users with the RBAC action approve on {name}, other than the requester",
        if needed.is_null() {
            opened["spec"]["requiredApprovals"].clone()
        } else {
            needed.clone()
        },
        gates.join(", ")
    );
    println!("  berth app approvals {name}; berth app diff {name} --request {request}");
    if !wait {
        return Ok(true);
    }
    while tokio::time::Instant::now() < deadline {
        let r = api.call(Method::GET, &request_path, None).await?;
        let phase = r["status"]["phase"].as_str().unwrap_or("Pending");
        match phase {
            "Executed" => break,
            "Rejected" | "Expired" | "Superseded" | "Forged" => {
                eprintln!(
                    "request {request} {}: {}",
                    phase.to_lowercase(),
                    r["status"]["message"].as_str().unwrap_or_default()
                );
                return Ok(false);
            }
            _ => {}
        }
        let app = api.call(Method::GET, path, None).await?;
        if info_value(&app, "berth.io/request").as_deref() == Some(request) {
            // Approved: the sync runs now.
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if tokio::time::Instant::now() >= deadline {
        bail!("{name}: no decision on request {request} within {timeout} s (it stays open)");
    }
    println!("request {request} approved; syncing");
    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
    wait_for_operation(api, path, name, remaining).await
}

async fn wait_for_operation(api: &Api, path: &str, name: &str, timeout: Duration) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut view = OperationView::default();
    match api
        .stream(&format!(
            "/api/v1/stream/applications?name={}",
            encode(name)
        ))
        .await
    {
        Ok(mut response) => {
            let mut buffer = String::new();
            loop {
                let chunk = match tokio::time::timeout_at(deadline, response.chunk()).await {
                    Err(_) => break,
                    Ok(Ok(Some(c))) => c,
                    // The stream ended: on by polling.
                    Ok(_) => return poll_operation(api, path, name, deadline, view).await,
                };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                        let Ok(v) = serde_json::from_str::<Value>(data.trim()) else {
                            continue;
                        };
                        if let Some(done) = view.show(name, &v["result"]["application"]) {
                            return Ok(done);
                        }
                    }
                }
            }
        }
        Err(_) => return poll_operation(api, path, name, deadline, view).await,
    }
    bail!(
        "{name}: the operation did not end within {} s (it goes on; `berth app get {name}` shows it)",
        timeout.as_secs()
    )
}

async fn poll_operation(
    api: &Api,
    path: &str,
    name: &str,
    deadline: tokio::time::Instant,
    mut view: OperationView,
) -> Result<bool> {
    while tokio::time::Instant::now() < deadline {
        let a = api.call(Method::GET, path, None).await?;
        if let Some(done) = view.show(name, &a) {
            return Ok(done);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    bail!("{name}: the operation did not end in time (it goes on; `berth app get {name}` shows it)")
}

/// What of an operation has been printed.
#[derive(Default)]
struct OperationView {
    last: String,
    shown: std::collections::HashSet<String>,
}

impl OperationView {
    /// Prints what is new in `a`'s operation; once it has ended, the
    /// results and whether it succeeded.
    fn show(&mut self, name: &str, a: &Value) -> Option<bool> {
        let color = std::io::stdout().is_terminal();
        let paint = |status: &str| match (color, status) {
            (true, "Synced") => format!("\u{1b}[32m{status}\u{1b}[0m"),
            (true, "SyncFailed") => format!("\u{1b}[31m{status}\u{1b}[0m"),
            _ => status.to_string(),
        };
        let state = &a["status"]["operationState"];
        let phase = text(state, "/phase");
        // A request not yet taken up: what the status shows is the last
        // operation's.
        if a.get("operation").is_some_and(|o| !o.is_null()) || phase.is_empty() {
            return None;
        }
        let line = format!("{phase}: {}", text(state, "/message"));
        if line != self.last {
            println!("{name}: {line}");
            self.last = line;
        }
        let results = state["syncResult"]["resources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if phase == "Running" {
            for r in &results {
                let key = format!(
                    "{}/{}/{}/{}/{}",
                    text(r, "/syncPhase"),
                    text(r, "/kind"),
                    text(r, "/namespace"),
                    text(r, "/name"),
                    text(r, "/status")
                );
                if self.shown.insert(key) {
                    println!(
                        "  {:<8} {} {}/{}  {}  {}",
                        text(r, "/syncPhase"),
                        text(r, "/kind"),
                        text(r, "/namespace"),
                        text(r, "/name"),
                        paint(text(r, "/status")),
                        text(r, "/message")
                    );
                }
            }
            return None;
        }
        if !matches!(phase, "Succeeded" | "Failed" | "Error") {
            return None;
        }
        let mut rows = vec![
            ["KIND", "NAMESPACE", "NAME", "PHASE", "RESULT", "MESSAGE"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        ];
        for r in &results {
            rows.push(vec![
                text(r, "/kind").to_string(),
                text(r, "/namespace").to_string(),
                text(r, "/name").to_string(),
                text(r, "/syncPhase").to_string(),
                paint(text(r, "/status")),
                text(r, "/message").to_string(),
            ]);
        }
        if rows.len() > 1 {
            print_table(&rows);
        }
        Some(phase == "Succeeded")
    }
}

/// Prints tree nodes, each under its parent, children indented.
fn tree_rows(nodes: &[Value], rows: &mut Vec<Vec<String>>) {
    let uids: std::collections::HashSet<&str> = nodes.iter().map(|n| text(n, "/uid")).collect();
    // Roots: nodes none of whose parents is in the tree.
    let is_root = |n: &Value| {
        n["parentRefs"]
            .as_array()
            .is_none_or(|p| p.iter().all(|r| !uids.contains(text(r, "/uid"))))
    };
    fn visit(
        n: &Value,
        depth: usize,
        nodes: &[Value],
        rows: &mut Vec<Vec<String>>,
        seen: &mut std::collections::HashSet<String>,
    ) {
        let uid = text(n, "/uid").to_string();
        if !uid.is_empty() && !seen.insert(uid.clone()) {
            return;
        }
        rows.push(vec![
            format!("{}{}", "  ".repeat(depth), text(n, "/kind")),
            text(n, "/namespace").to_string(),
            text(n, "/name").to_string(),
            text(n, "/health/status").to_string(),
        ]);
        for child in nodes.iter().filter(|c| {
            c["parentRefs"]
                .as_array()
                .is_some_and(|p| p.iter().any(|r| text(r, "/uid") == uid))
        }) {
            visit(child, depth + 1, nodes, rows, seen);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for n in nodes.iter().filter(|n| is_root(n)) {
        visit(n, 0, nodes, rows, &mut seen);
    }
}

/// Arguments of `berth account`.
#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(subcommand)]
    command: AccountCommand,
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Who this session is: user name and groups.
    GetUserInfo {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Accounts, their capabilities and API tokens.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Create an API token and print it.
    GenerateToken {
        /// The account (default: the one logged in).
        #[arg(short = 'a', long)]
        account: Option<String>,
        /// The token's id (default: random).
        #[arg(long)]
        id: Option<String>,
        /// Seconds until it expires (default: never).
        #[arg(short = 'e', long)]
        expires_in: Option<u64>,
    },
    /// Revoke an API token.
    RevokeToken {
        /// The account (default: the one logged in).
        #[arg(short = 'a', long)]
        account: Option<String>,
        /// The token's id.
        #[arg(long)]
        id: String,
    },
    /// Change a password; the current password (yours) and the new one are
    /// read from standard input, one per line.
    UpdatePassword {
        /// The account (default: the one logged in).
        #[arg(long)]
        account: Option<String>,
    },
}

/// `berth account ...`.
pub fn account(config: &Path, args: AccountArgs) -> Result<bool> {
    let api = Api::from_config(config)?;
    let rt = runtime()?;
    let me = || -> Result<String> {
        let who = rt.block_on(api.call(Method::GET, "/api/v1/session/userinfo", None))?;
        Ok(text(&who, "/username").to_string())
    };
    match args.command {
        AccountCommand::GetUserInfo { output } => {
            let who = rt.block_on(api.call(Method::GET, "/api/v1/session/userinfo", None))?;
            match output {
                Output::Json | Output::Yaml => print_value(&who, output)?,
                _ => {
                    let groups: Vec<&str> = who["groups"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    println!("Logged In: {}", who["loggedIn"]);
                    println!("Username: {}", text(&who, "/username"));
                    println!("Groups: {}", groups.join(","));
                }
            }
        }
        AccountCommand::List { output } => {
            let list = rt.block_on(api.call(Method::GET, "/api/v1/account", None))?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            match output {
                Output::Json | Output::Yaml => print_value(&json!(items), output)?,
                Output::Name => {
                    for a in &items {
                        println!("{}", text(a, "/name"));
                    }
                }
                _ => {
                    let mut rows = vec![
                        ["NAME", "ENABLED", "CAPABILITIES", "TOKENS"]
                            .iter()
                            .map(|s| s.to_string())
                            .collect::<Vec<_>>(),
                    ];
                    for a in &items {
                        let caps: Vec<&str> = a["capabilities"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        let tokens: Vec<&str> = a["tokens"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|t| t["id"].as_str())
                            .collect();
                        rows.push(vec![
                            text(a, "/name").to_string(),
                            a["enabled"].to_string(),
                            caps.join(","),
                            tokens.join(","),
                        ]);
                    }
                    print_table(&rows);
                }
            }
        }
        AccountCommand::GenerateToken {
            account,
            id,
            expires_in,
        } => {
            let account = match account {
                Some(a) => a,
                None => me()?,
            };
            let mut body = json!({});
            if let Some(id) = id {
                body["id"] = json!(id);
            }
            if let Some(e) = expires_in {
                body["expiresIn"] = json!(e);
            }
            let r = rt.block_on(api.call(
                Method::POST,
                &format!("/api/v1/account/{}/token", encode(&account)),
                Some(&body),
            ))?;
            println!("{}", text(&r, "/token"));
        }
        AccountCommand::RevokeToken { account, id } => {
            let account = match account {
                Some(a) => a,
                None => me()?,
            };
            rt.block_on(api.call(
                Method::DELETE,
                &format!("/api/v1/account/{}/token/{}", encode(&account), encode(&id)),
                None,
            ))?;
            println!("token {id} of {account} revoked");
        }
        AccountCommand::UpdatePassword { account } => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the passwords from standard input")?;
            let mut lines = input.lines();
            let (Some(current), Some(new)) = (lines.next(), lines.next()) else {
                bail!("give the current password and the new one on standard input, one per line");
            };
            let mut body = json!({"currentPassword": current, "newPassword": new});
            if let Some(a) = &account {
                body["name"] = json!(a);
            }
            rt.block_on(api.call(Method::PUT, "/api/v1/account/password", Some(&body)))?;
            println!("password updated");
        }
    }
    Ok(true)
}
