//! `berth controller`: the reconcile loop against a cluster, in the
//! foreground until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::{Context, Result};
use berth_controller::controller::{Config, Controller};
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::signal::unix::{SignalKind, signal};

/// Arguments of `berth controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The kubeconfig to use (default: `KUBECONFIG`, `~/.kube/config`, or
    /// the in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    context: Option<String>,
    /// The control namespace, where Applications and AppProjects live.
    #[arg(short = 'n', long, default_value = berth_api::crds::CONTROL_NAMESPACE)]
    namespace: String,
    /// Where Git mirrors and rendered charts are cached.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Run as one of several replicas: only the holder of the Lease
    /// `berth-controller` in the control namespace reconciles.
    #[arg(long)]
    leader_elect: bool,
    /// Also serve the API (and `/metrics`, `/healthz`, `/readyz`) on this
    /// address, in the same process: its diffs and resource trees read the
    /// controller's caches.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
}

/// A client for the kubeconfig and context given, or the usual defaults.
pub async fn client(
    kubeconfig: Option<&PathBuf>,
    context: Option<&String>,
) -> Result<kube::Client> {
    let options = KubeConfigOptions {
        context: context.cloned(),
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("--kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .with_context(|| format!("--kubeconfig {}", path.display()))?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .context("--context")?,
        None => kube::Config::infer()
            .await
            .context("no cluster: give --kubeconfig, set KUBECONFIG, or run inside a cluster")?,
    };
    kube::Client::try_from(config).context("creating the Kubernetes client")
}

/// Berth's cache directory: `$XDG_CACHE_HOME/berth`, else
/// `~/.cache/berth`; `berth render` and the controller each keep a
/// subdirectory.
pub fn cache_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("berth")
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let term = signal(SignalKind::terminate());
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs `berth controller`.
pub fn run(args: ControllerArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let client = client(args.kubeconfig.as_ref(), args.context.as_ref()).await?;
        let cache = args
            .cache_dir
            .clone()
            .unwrap_or_else(|| cache_root().join("controller"));
        tracing::info!(namespace = %args.namespace, "controller starting");
        let mut config = Config::new(&args.namespace, cache);
        if args.leader_elect {
            config.leader_election = Some(berth_controller::lease::LeaderElection::new());
        }
        let views = std::sync::Arc::clone(&config.views);
        let controller = Controller::start(client.clone(), config)
            .await
            .context("starting the controller")?;
        // Kept until the controller stops: dropping it stops the server.
        let _server = match args.listen {
            Some(listen) => {
                let server = berth_server::Server::start(
                    client,
                    berth_server::ServerConfig {
                        namespace: args.namespace.clone(),
                        listen,
                        views: Some(views),
                    },
                )
                .await
                .context("starting the API server")?;
                tracing::info!(url = %server.url(), "API server listening");
                Some(server)
            }
            None => None,
        };
        controller
            .serve(shutdown_signal())
            .await
            .context("running the controller")?;
        tracing::info!("controller stopped");
        Ok(())
    })
}
