//! `berth`: the command-line interface of Berth, a GitOps continuous-delivery
//! controller for Kubernetes.
//!
//! This binary holds argument parsing and glue only; the work lives in the
//! library crates.

mod admin;
mod app;
mod client;
mod controller;
mod demo;
mod manage;
mod render;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Berth: GitOps continuous delivery for Kubernetes, compatible with Argo CD's
/// Application API.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// The CLI configuration (servers, contexts, tokens); default
    /// `~/.config/berth/config`.
    #[arg(long, global = true, env = "BERTH_CONFIG")]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a local Kubernetes control plane and stay in the foreground until
    /// Ctrl-C or SIGTERM.
    Up(up::UpArgs),
    /// Print the Kubernetes objects a source declares (offline): a directory,
    /// a Kustomize application or a Helm chart, from Git or a local directory.
    Render(Box<render::RenderArgs>),
    /// Run the controller: compare every Application in the control
    /// namespace with Git and the cluster, and report it in its status.
    Controller(controller::ControllerArgs),
    /// Offline tools over files: health, diff and sync plans as the
    /// controller computes them.
    Admin(admin::AdminArgs),
    /// Log in to a Berth server and remember its token.
    Login(app::LoginArgs),
    /// Forget the current server's token.
    Logout,
    /// Applications, through the Berth server.
    App(app::AppArgs),
    /// Accounts, API tokens and passwords, through the Berth server.
    Account(app::AccountArgs),
    /// ApplicationSets (read-only; written with kubectl), through the
    /// Berth server.
    Appset(manage::AppsetArgs),
    /// Projects (AppProjects), through the Berth server.
    Proj(manage::ProjArgs),
    /// Repositories and their credentials, through the Berth server.
    Repo(manage::RepoArgs),
    /// Clusters to deploy to, through the Berth server.
    Cluster(manage::ClusterArgs),
    /// The audit log: who did what, when, from where, with what answer.
    Audit(manage::AuditArgs),
    /// The client's version, and the server's when logged in.
    Version,
    /// Print a shell completion script (e.g. `source <(berth completion bash)`).
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let config = cli.config.clone().unwrap_or_else(client::default_path);
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Render(args) => render::run(*args),
        Command::Admin(args) => return admin::run(args),
        Command::Controller(args) => controller::run(args),
        Command::Login(args) => app::login(&config, args),
        Command::Logout => app::logout(&config),
        Command::Version => app::version(&config),
        Command::Completion { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "berth", &mut std::io::stdout());
            Ok(())
        }
        Command::Account(args) => app::account(&config, args).map(|_| ()),
        Command::Appset(args) => manage::appset(&config, args),
        Command::Proj(args) => manage::proj(&config, args),
        Command::Repo(args) => manage::repo(&config, args),
        Command::Cluster(args) => manage::cluster(&config, args),
        Command::Audit(args) => manage::audit(&config, args),
        Command::App(args) => match app::run(&config, args) {
            Ok(app::Exit::Ok) => Ok(()),
            Ok(app::Exit::Failed) => return ExitCode::from(1),
            Ok(app::Exit::Error(e)) => {
                eprintln!("error: {}", describe(&e));
                return ExitCode::from(2);
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line. Library errors already include
/// their cause in their message, so a cause already said is not repeated.
fn describe(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

/// Logs go to stderr, one line per event; `RUST_LOG` selects the level.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
