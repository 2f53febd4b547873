//! `berth up`: a local control plane for trying Berth out.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_controller::controller::{Config as ControllerConfig, Controller};
use berth_testenv::{ControlPlane, Options};
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

/// Arguments of `berth up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory for the cluster's data (etcd, certificates, kubeconfig);
    /// running again on the same directory finds the same cluster.
    #[arg(long, default_value = ".berth")]
    data_dir: PathBuf,

    /// Port of the Kubernetes API server (default: the previous run's port if
    /// free, else any free port).
    #[arg(long)]
    port: Option<u16>,

    /// Start only the cluster, without the controller.
    #[arg(long, conflicts_with = "demo")]
    no_controller: bool,

    /// Also serve a demo Git repository (a guestbook in dev, staging and
    /// prod Kustomize overlays) and create one Application per environment:
    /// dev automated with self-heal, staging automated, prod manual.
    #[arg(long)]
    demo: bool,

    /// Use this cluster instead of starting a local control plane (the
    /// `kubeconfig:` line then names this file).
    #[arg(long, conflicts_with = "port")]
    kubeconfig: Option<PathBuf>,

    /// With a kubeconfig (this flag's, `KUBECONFIG` or `~/.kube/config`):
    /// the context to use instead of starting a local control plane.
    #[arg(long, conflicts_with = "port")]
    context: Option<String>,

    /// Where the API server listens; port 0 picks a free one (the
    /// `server:` line shows it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
}

/// The kubeconfig file kubectl would read: `KUBECONFIG`'s first entry, else
/// `~/.kube/config`.
fn default_kubeconfig() -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("KUBECONFIG") {
        return std::env::split_paths(&paths).find(|p| !p.as_os_str().is_empty());
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube").join("config"))
}

/// Runs `berth up` until Ctrl-C or SIGTERM.
pub fn run(args: UpArgs) -> Result<()> {
    let data_dir = std::path::absolute(&args.data_dir)
        .with_context(|| format!("data dir {}", args.data_dir.display()))?;
    // A cluster named on the command line is used as it is; otherwise a
    // local control plane is started.
    let external = args.kubeconfig.is_some() || args.context.is_some();
    let mut plane = if external {
        None
    } else {
        let program = berth_testenv::find_tool("berth-testenv")
            .context("cannot start the local control plane")?;
        tracing::info!(data_dir = %data_dir.display(), "starting the local control plane");
        let mut options = Options::default().data_dir(&data_dir);
        if let Some(port) = args.port {
            options = options.port(port);
        }
        let plane = ControlPlane::start_program(&program, options)
            .context("starting the local control plane")?;
        tracing::info!(
            startup_ms = plane.startup_time().as_millis() as u64,
            "local control plane ready"
        );
        Some(plane)
    };
    let kubeconfig = match (&plane, &args.kubeconfig) {
        (Some(p), _) => p.kubeconfig().to_path_buf(),
        (None, Some(k)) => {
            std::path::absolute(k).with_context(|| format!("--kubeconfig {}", k.display()))?
        }
        (None, None) => default_kubeconfig()
            .context("--context: no kubeconfig file (set KUBECONFIG or give --kubeconfig)")?,
    };
    let context = args.context.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The controller is ready (CRDs installed, the `argocd` namespace and
    // default project present, caches listed) before the line is printed.
    let (stop_controller, controller_stopped) = tokio::sync::oneshot::channel::<()>();
    let controller_config =
        ControllerConfig::new(berth_api::crds::CONTROL_NAMESPACE, data_dir.join("cache"));
    let views = Arc::clone(&controller_config.views);
    let controller = if args.no_controller {
        None
    } else {
        Some(runtime.block_on(async {
            let client = crate::controller::client(Some(&kubeconfig), context.as_ref()).await?;
            // Started here, so a failure is reported before the line that
            // says everything is ready.
            let controller = Controller::start(client, controller_config)
                .await
                .context("starting the controller")?;
            Ok::<_, anyhow::Error>(runtime.spawn(async move {
                let stopped = async {
                    let _ = controller_stopped.await;
                };
                if let Err(e) = controller.serve(stopped).await {
                    tracing::error!(error = %e, "the controller stopped");
                }
            }))
        })?)
    };
    // Kept until the end: dropping it stops its git daemon.
    let _demo = if args.demo {
        let demo = crate::demo::start(&data_dir)?;
        let names = runtime.block_on(async {
            let client = crate::controller::client(Some(&kubeconfig), context.as_ref()).await?;
            crate::demo::apply_applications(&client, berth_api::crds::CONTROL_NAMESPACE, &demo.url)
                .await
        })?;
        eprintln!(
            "demo: {} in namespace argocd, from {} (working clone: {}).\n\
             demo: guestbook-dev syncs every commit and reverts changes by hand, guestbook-staging syncs every commit,\n\
             demo: guestbook-prod waits: kubectl patch app guestbook-prod -n argocd --type merge -p '{{\"operation\":{{\"sync\":{{}}}}}}'",
            names.join(", "),
            demo.url,
            demo.work.display()
        );
        Some(demo)
    } else {
        None
    };
    // The API server, with a CLI configuration logged in as admin.
    let server = if args.no_controller {
        None
    } else {
        let server = runtime.block_on(async {
            let client = crate::controller::client(Some(&kubeconfig), context.as_ref()).await?;
            berth_server::Server::start(
                client,
                berth_server::ServerConfig {
                    namespace: berth_api::crds::CONTROL_NAMESPACE.into(),
                    listen: args.listen,
                    views: Some(views),
                },
            )
            .await
            .context("starting the API server")
        })?;
        let token = server
            .token_for("admin")
            .map_err(|e| anyhow::anyhow!("issuing the admin's token: {e}"))?;
        let mut cli = crate::client::ClientConfig::default();
        cli.login(&server.url(), &token);
        let path = data_dir.join("berth-config");
        cli.save(&path)?;
        Some((server, path))
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "kubeconfig: {}", kubeconfig.display())?;
    if let Some((server, path)) = &server {
        writeln!(stdout, "server: {}", server.url())?;
        drop(stdout);
        eprintln!(
            "berth: logged in as admin in {p}: berth --config {p} app list",
            p = path.display()
        );
    } else {
        stdout.flush()?;
        drop(stdout);
    }
    if controller.is_some() {
        tracing::info!(
            namespace = berth_api::crds::CONTROL_NAMESPACE,
            "controller running: kubectl apply an Application to the argocd namespace"
        );
    }

    let reason = runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok::<_, std::io::Error>(Stop::Signal("interrupt")),
                _ = term.recv() => return Ok(Stop::Signal("terminate")),
                _ = tick.tick() => {
                    if let Some(plane) = plane.as_mut()
                        && plane.wait_exit(Duration::ZERO).unwrap_or(true)
                    {
                        return Ok(Stop::Exited);
                    }
                }
            }
        }
    })?;
    let _ = stop_controller.send(());
    if let Some(handle) = controller {
        let _ = runtime.block_on(handle);
    }
    match reason {
        Stop::Signal(name) => {
            tracing::info!(signal = name, "stopping the local control plane");
            if let Some(plane) = plane.take() {
                let clean = plane.stop(Duration::from_secs(30))?;
                if !clean {
                    tracing::warn!("the control plane did not stop cleanly and was killed");
                }
            }
            Ok(())
        }
        Stop::Exited => anyhow::bail!(
            "the local control plane exited unexpectedly; see {}",
            data_dir.join("logs").display()
        ),
    }
}

enum Stop {
    Signal(&'static str),
    Exited,
}
