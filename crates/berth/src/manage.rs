//! `berth proj`, `berth repo` and `berth cluster`: projects, repositories
//! and clusters through the API server.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::app::{Output, encode, print_table, print_value, runtime, text};
use crate::client::Api;

/// Arguments of `berth audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only calls about this application.
    #[arg(long = "app")]
    app: Option<String>,
    /// Only calls at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// At most this many entries, newest first.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
}

/// `berth audit`: the audit log, newest first.
pub fn audit(config: &Path, args: AuditArgs) -> Result<()> {
    let api = Api::from_config(config)?;
    let rt = runtime()?;
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(a) = &args.app {
        query.push(format!("application={}", encode(a)));
    }
    if let Some(s) = &args.since {
        query.push(format!("since={}", encode(s)));
    }
    let list = rt.block_on(api.call(
        Method::GET,
        &format!("/api/v1/audit?{}", query.join("&")),
        None,
    ))?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    match args.output {
        Output::Json | Output::Yaml => print_value(&json!(items), args.output)?,
        Output::Name => items.iter().for_each(|e| println!("{}", text(e, "/path"))),
        _ => {
            let mut rows = vec![header(&[
                "TIME", "USER", "METHOD", "PATH", "STATUS", "FROM",
            ])];
            for e in &items {
                rows.push(vec![
                    text(e, "/time").to_string(),
                    text(e, "/user").to_string(),
                    text(e, "/method").to_string(),
                    text(e, "/path").to_string(),
                    e["status"].to_string(),
                    text(e, "/remoteAddr").to_string(),
                ]);
            }
            print_table(&rows);
        }
    }
    Ok(())
}

/// Arguments of `berth appset`.
#[derive(Debug, Args)]
pub struct AppsetArgs {
    #[command(subcommand)]
    command: AppsetCommand,
}

#[derive(Debug, Subcommand)]
enum AppsetCommand {
    /// List ApplicationSets, with how many Applications each made and
    /// whether it is up to date.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show one ApplicationSet with its status.
    Get {
        /// The ApplicationSet.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "yaml")]
        output: Output,
    },
}

/// `berth appset`.
pub fn appset(config: &Path, args: AppsetArgs) -> Result<()> {
    let api = Api::from_config(config)?;
    let rt = runtime()?;
    match args.command {
        AppsetCommand::List { output } => {
            let list = rt.block_on(api.call(Method::GET, "/api/v1/applicationsets", None))?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            match output {
                Output::Json | Output::Yaml => print_value(&json!(items), output)?,
                Output::Name => items
                    .iter()
                    .for_each(|s| println!("{}", text(s, "/metadata/name"))),
                _ => {
                    let mut rows = vec![header(&[
                        "NAME",
                        "GENERATORS",
                        "APPLICATIONS",
                        "STATUS",
                        "MESSAGE",
                    ])];
                    for s in &items {
                        let generators = berth_api::appset::generator_kinds(s).join(",");
                        let state = berth_api::appset::SetState::of(s);
                        let message = match &state {
                            berth_api::appset::SetState::Error(m) => m.clone(),
                            _ => String::new(),
                        };
                        let state = state.label();
                        rows.push(vec![
                            text(s, "/metadata/name").to_string(),
                            generators,
                            s["status"]["resources"]
                                .as_array()
                                .map(Vec::len)
                                .unwrap_or(0)
                                .to_string(),
                            state.to_string(),
                            message,
                        ]);
                    }
                    print_table(&rows);
                }
            }
        }
        AppsetCommand::Get { name, output } => {
            let s = rt.block_on(api.call(
                Method::GET,
                &format!("/api/v1/applicationsets/{}", encode(&name)),
                None,
            ))?;
            match output {
                Output::Name => println!("{}", text(&s, "/metadata/name")),
                Output::Json => print_value(&s, Output::Json)?,
                _ => print_value(&s, Output::Yaml)?,
            }
        }
    }
    Ok(())
}

/// Arguments of `berth proj`.
#[derive(Debug, Args)]
pub struct ProjArgs {
    #[command(subcommand)]
    command: ProjCommand,
}

#[derive(Debug, Subcommand)]
enum ProjCommand {
    /// List projects.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Show one project.
    Get {
        /// The project.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "yaml")]
        output: Output,
    },
    /// Create a project from a manifest (`-f`), or from flags.
    Create {
        /// The project's name (with flags).
        name: Option<String>,
        /// An AppProject manifest (YAML or JSON).
        #[arg(short = 'f', long = "file", conflicts_with = "name")]
        file: Option<PathBuf>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Permitted source repository (glob; repeatable).
        #[arg(short = 's', long = "src")]
        sources: Vec<String>,
        /// Permitted destination as SERVER,NAMESPACE (globs; repeatable).
        #[arg(short = 'd', long = "dest")]
        destinations: Vec<String>,
        /// Replace the spec of an existing project of that name.
        #[arg(long)]
        upsert: bool,
    },
    /// Delete a project (refused while applications use it).
    Delete {
        /// The project.
        name: String,
    },
    /// Tokens of a project's roles (`spec.roles`).
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
}

#[derive(Debug, Subcommand)]
enum RoleCommand {
    /// Create a token for a project role and print it.
    CreateToken {
        /// The project.
        project: String,
        /// The role.
        role: String,
        /// The token's id (default: random).
        #[arg(long)]
        id: Option<String>,
        /// Seconds until it expires (default: never).
        #[arg(short = 'e', long)]
        expires_in: Option<u64>,
    },
    /// Revoke a project role token by its id.
    DeleteToken {
        /// The project.
        project: String,
        /// The role.
        role: String,
        /// The token's id.
        #[arg(long)]
        id: String,
    },
}

/// Arguments of `berth repo`.
#[derive(Debug, Args)]
pub struct RepoArgs {
    #[command(subcommand)]
    command: RepoCommand,
}

#[derive(Debug, Subcommand)]
enum RepoCommand {
    /// Add a repository; its credentials are checked first.
    Add {
        /// The repository's URL.
        url: String,
        /// User name (HTTPS).
        #[arg(long)]
        username: Option<String>,
        /// Read the password or token from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// A private key file (SSH).
        #[arg(long)]
        ssh_private_key_path: Option<PathBuf>,
        /// Skip TLS verification and SSH host-key checking.
        #[arg(long)]
        insecure_skip_server_verification: bool,
        /// git (default) or helm.
        #[arg(long, value_parser = ["git", "helm"])]
        r#type: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Scope it to this project.
        #[arg(long)]
        project: Option<String>,
        /// Replace an existing repository of that URL.
        #[arg(long)]
        upsert: bool,
    },
    /// List repositories and whether they can be reached.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Remove a repository.
    Rm {
        /// The repository's URL.
        url: String,
    },
}

/// Arguments of `berth cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Add the cluster of a kubeconfig context, with that context's
    /// credentials (a token or client certificate); the API server must
    /// answer with them.
    Add {
        /// The context.
        context: String,
        /// The kubeconfig (default: KUBECONFIG or ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// The cluster's name in Berth (default: the context's name).
        #[arg(long)]
        name: Option<String>,
        /// Only these namespaces (repeatable): a namespaced cluster.
        #[arg(long = "namespace")]
        namespaces: Vec<String>,
        /// Scope it to this project.
        #[arg(long)]
        project: Option<String>,
        /// Replace an existing cluster of that server.
        #[arg(long)]
        upsert: bool,
    },
    /// List clusters and whether they can be reached.
    List {
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Remove a cluster (its server URL, or its name).
    Rm {
        /// Server URL or name.
        server: String,
    },
}

fn header(cols: &[&str]) -> Vec<String> {
    cols.iter().map(|s| s.to_string()).collect()
}

/// `berth proj ...`.
pub fn proj(config: &Path, args: ProjArgs) -> Result<()> {
    let api = Api::from_config(config)?;
    let rt = runtime()?;
    match args.command {
        ProjCommand::List { output } => {
            let list = rt.block_on(api.call(Method::GET, "/api/v1/projects", None))?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            match output {
                Output::Json | Output::Yaml => print_value(&json!(items), output)?,
                Output::Name => items
                    .iter()
                    .for_each(|p| println!("{}", text(p, "/metadata/name"))),
                _ => {
                    let mut rows =
                        vec![header(&["NAME", "DESCRIPTION", "SOURCES", "DESTINATIONS"])];
                    for p in &items {
                        let list = |k: &str, f: &dyn Fn(&Value) -> String| {
                            p["spec"][k]
                                .as_array()
                                .map(|a| a.iter().map(f).collect::<Vec<_>>().join(","))
                                .unwrap_or_default()
                        };
                        rows.push(vec![
                            text(p, "/metadata/name").to_string(),
                            text(p, "/spec/description").to_string(),
                            list("sourceRepos", &|v| {
                                v.as_str().unwrap_or_default().to_string()
                            }),
                            list("destinations", &|d| {
                                format!(
                                    "{},{}",
                                    d["server"]
                                        .as_str()
                                        .or(d["name"].as_str())
                                        .unwrap_or_default(),
                                    d["namespace"].as_str().unwrap_or_default()
                                )
                            }),
                        ]);
                    }
                    print_table(&rows);
                }
            }
        }
        ProjCommand::Get { name, output } => {
            let p = rt.block_on(api.call(
                Method::GET,
                &format!("/api/v1/projects/{}", encode(&name)),
                None,
            ))?;
            match output {
                Output::Name => println!("{}", text(&p, "/metadata/name")),
                Output::Json => print_value(&p, Output::Json)?,
                _ => print_value(&p, Output::Yaml)?,
            }
        }
        ProjCommand::Create {
            name,
            file,
            description,
            sources,
            destinations,
            upsert,
        } => {
            let project = match (file, name) {
                (Some(file), _) => {
                    let content = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    serde_saphyr::from_str::<Value>(&content)
                        .with_context(|| format!("{}: not YAML or JSON", file.display()))?
                }
                (None, Some(name)) => {
                    let mut dests = Vec::new();
                    for d in &destinations {
                        let Some((server, namespace)) = d.split_once(',') else {
                            bail!("--dest {d:?}: expected SERVER,NAMESPACE");
                        };
                        dests.push(json!({"server": server, "namespace": namespace}));
                    }
                    let mut spec = json!({"sourceRepos": sources, "destinations": dests});
                    if let Some(d) = description {
                        spec["description"] = json!(d);
                    }
                    json!({"metadata": {"name": name}, "spec": spec})
                }
                (None, None) => bail!("give a project name (with flags) or -f FILE"),
            };
            let p = rt.block_on(api.call(
                Method::POST,
                "/api/v1/projects",
                Some(&json!({"project": project, "upsert": upsert})),
            ))?;
            println!("project {} created", text(&p, "/metadata/name"));
        }
        ProjCommand::Role {
            command:
                RoleCommand::CreateToken {
                    project,
                    role,
                    id,
                    expires_in,
                },
        } => {
            let mut body = json!({});
            if let Some(id) = id {
                body["id"] = json!(id);
            }
            if let Some(e) = expires_in {
                body["expiresIn"] = json!(e);
            }
            let r = rt.block_on(api.call(
                Method::POST,
                &format!(
                    "/api/v1/projects/{}/roles/{}/token",
                    encode(&project),
                    encode(&role)
                ),
                Some(&body),
            ))?;
            println!("{}", text(&r, "/token"));
        }
        ProjCommand::Role {
            command: RoleCommand::DeleteToken { project, role, id },
        } => {
            rt.block_on(api.call(
                Method::DELETE,
                &format!(
                    "/api/v1/projects/{}/roles/{}/token/0?id={}",
                    encode(&project),
                    encode(&role),
                    encode(&id)
                ),
                None,
            ))?;
            println!("token {id} of role {role} in project {project} revoked");
        }
        ProjCommand::Delete { name } => {
            rt.block_on(api.call(
                Method::DELETE,
                &format!("/api/v1/projects/{}", encode(&name)),
                None,
            ))?;
            println!("project {name} deleted");
        }
    }
    Ok(())
}

/// `berth repo ...`.
pub fn repo(config: &Path, args: RepoArgs) -> Result<()> {
    let api = Api::from_config(config)?;
    let rt = runtime()?;
    match args.command {
        RepoCommand::Add {
            url,
            username,
            password_stdin,
            ssh_private_key_path,
            insecure_skip_server_verification,
            r#type,
            name,
            project,
            upsert,
        } => {
            let mut body = json!({"repo": url, "upsert": upsert});
            if insecure_skip_server_verification {
                body["insecure"] = json!(true);
            }
            for (k, v) in [
                ("username", username),
                ("type", r#type),
                ("name", name),
                ("project", project),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if password_stdin {
                let mut p = String::new();
                std::io::stdin()
                    .read_to_string(&mut p)
                    .context("reading the password from standard input")?;
                body["password"] = json!(p.trim_end_matches(['\n', '\r']));
            }
            if let Some(path) = ssh_private_key_path {
                body["sshPrivateKey"] = json!(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?
                );
            }
            rt.block_on(api.call(Method::POST, "/api/v1/repositories", Some(&body)))?;
            println!("repository {url} added");
        }
        RepoCommand::List { output } => {
            let list = rt.block_on(api.call(Method::GET, "/api/v1/repositories", None))?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            match output {
                Output::Json | Output::Yaml => print_value(&json!(items), output)?,
                Output::Name => items.iter().for_each(|r| println!("{}", text(r, "/repo"))),
                _ => {
                    let mut rows = vec![header(&[
                        "TYPE", "NAME", "REPO", "PROJECT", "STATUS", "MESSAGE",
                    ])];
                    for r in &items {
                        rows.push(vec![
                            text(r, "/type").to_string(),
                            text(r, "/name").to_string(),
                            text(r, "/repo").to_string(),
                            text(r, "/project").to_string(),
                            text(r, "/connectionState/status").to_string(),
                            text(r, "/connectionState/message").to_string(),
                        ]);
                    }
                    print_table(&rows);
                }
            }
        }
        RepoCommand::Rm { url } => {
            rt.block_on(api.call(
                Method::DELETE,
                &format!("/api/v1/repositories/{}", encode(&url)),
                None,
            ))?;
            println!("repository {url} removed");
        }
    }
    Ok(())
}

/// The kubeconfig `berth cluster add` reads: the flag, `KUBECONFIG`'s
/// first file, or `~/.kube/config`.
fn kubeconfig_path(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|k| std::env::split_paths(&k).next())
        .filter(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").context("HOME is not set; give --kubeconfig")?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}

/// Argo CD's cluster `config` from a kubeconfig context, with file
/// references read in.
fn cluster_from_context(path: &Path, context: &str) -> Result<(String, Value)> {
    let content =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let kc: Value = serde_saphyr::from_str(&content)
        .with_context(|| format!("{}: not a kubeconfig", path.display()))?;
    let named = |list: &str, name: &str| -> Option<Value> {
        kc[list]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
    };
    let ctx = named("contexts", context)
        .with_context(|| format!("{}: no context {context:?}", path.display()))?;
    let cluster_name = text(&ctx, "/context/cluster").to_string();
    let user_name = text(&ctx, "/context/user").to_string();
    let cluster = named("clusters", &cluster_name).with_context(|| {
        format!(
            "{}: context {context:?} names cluster {cluster_name:?}, which is not there",
            path.display()
        )
    })?;
    let user = named("users", &user_name).unwrap_or(json!({}));
    let dir = path.parent().unwrap_or(Path::new("."));
    let b64 = |data: &str, file: &str, from: &Value| -> Result<Option<String>> {
        if let Some(d) = from.get(data).and_then(Value::as_str) {
            return Ok(Some(d.to_string()));
        }
        if let Some(f) = from.get(file).and_then(Value::as_str) {
            let bytes = std::fs::read(dir.join(f)).with_context(|| format!("reading {f}"))?;
            use base64::Engine;
            return Ok(Some(
                base64::engine::general_purpose::STANDARD.encode(bytes),
            ));
        }
        Ok(None)
    };
    let c = &cluster["cluster"];
    let u = &user["user"];
    let mut tls = json!({});
    if let Some(ca) = b64("certificate-authority-data", "certificate-authority", c)? {
        tls["caData"] = json!(ca);
    }
    if c["insecure-skip-tls-verify"] == true {
        tls["insecure"] = json!(true);
    }
    if let Some(cert) = b64("client-certificate-data", "client-certificate", u)? {
        tls["certData"] = json!(cert);
    }
    if let Some(key) = b64("client-key-data", "client-key", u)? {
        tls["keyData"] = json!(key);
    }
    let mut config = json!({"tlsClientConfig": tls});
    if let Some(t) = u.get("token").and_then(Value::as_str) {
        config["bearerToken"] = json!(t);
    }
    for k in ["username", "password"] {
        if let Some(v) = u.get(k).and_then(Value::as_str) {
            config[k] = json!(v);
        }
    }
    let server = text(c, "/server").to_string();
    if server.is_empty() {
        bail!("{}: cluster {cluster_name:?} has no server", path.display());
    }
    Ok((server, config))
}

/// `berth cluster ...`.
pub fn cluster(config: &Path, args: ClusterArgs) -> Result<()> {
    let api = Api::from_config(config)?;
    let rt = runtime()?;
    match args.command {
        ClusterCommand::Add {
            context,
            kubeconfig,
            name,
            namespaces,
            project,
            upsert,
        } => {
            let path = kubeconfig_path(kubeconfig)?;
            let (server, cluster_config) = cluster_from_context(&path, &context)?;
            let mut body = json!({
                "server": server,
                "name": name.unwrap_or_else(|| context.clone()),
                "config": cluster_config,
                "upsert": upsert,
            });
            if !namespaces.is_empty() {
                body["namespaces"] = json!(namespaces);
            }
            if let Some(p) = project {
                body["project"] = json!(p);
            }
            let c = rt.block_on(api.call(Method::POST, "/api/v1/clusters", Some(&body)))?;
            println!(
                "cluster {} ({server}) added: Kubernetes {}",
                text(&c, "/name"),
                text(&c, "/serverVersion")
            );
        }
        ClusterCommand::List { output } => {
            let list = rt.block_on(api.call(Method::GET, "/api/v1/clusters", None))?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            match output {
                Output::Json | Output::Yaml => print_value(&json!(items), output)?,
                Output::Name => items.iter().for_each(|c| println!("{}", text(c, "/name"))),
                _ => {
                    let mut rows = vec![header(&[
                        "SERVER", "NAME", "VERSION", "STATUS", "MESSAGE", "PROJECT",
                    ])];
                    for c in &items {
                        rows.push(vec![
                            text(c, "/server").to_string(),
                            text(c, "/name").to_string(),
                            text(c, "/serverVersion").to_string(),
                            text(c, "/connectionState/status").to_string(),
                            text(c, "/connectionState/message").to_string(),
                            text(c, "/project").to_string(),
                        ]);
                    }
                    print_table(&rows);
                }
            }
        }
        ClusterCommand::Rm { server } => {
            let path = if server.contains("://") {
                format!("/api/v1/clusters/{}", encode(&server))
            } else {
                format!("/api/v1/clusters/{}?id.type=name", encode(&server))
            };
            rt.block_on(api.call(Method::DELETE, &path, None))?;
            println!("cluster {server} removed");
        }
    }
    Ok(())
}
