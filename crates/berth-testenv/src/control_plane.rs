//! Starting and stopping one local control plane process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::tools::find_tool;

/// The line prefix the control plane prints on stdout once it is ready.
const READY_PREFIX: &str = "kubeconfig: ";

/// How to start a control plane.
#[derive(Debug, Clone)]
pub struct Options {
    data_dir: Option<PathBuf>,
    port: Option<u16>,
    nodes: u32,
    pod_ready_delay: Duration,
    ready_timeout: Duration,
    quiet: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data_dir: None,
            port: None,
            nodes: 3,
            pod_ready_delay: Duration::from_secs(1),
            ready_timeout: Duration::from_secs(180),
            quiet: false,
        }
    }
}

impl Options {
    /// Keep etcd data, PKI and kubeconfigs in `dir`, so that a later start on
    /// the same directory finds the same cluster. Without it, a temporary
    /// directory is used and removed when the control plane stops.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Serve the API on this port (default: the last run's port, else any).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How many simulated nodes to register (default 3).
    pub fn nodes(mut self, nodes: u32) -> Self {
        self.nodes = nodes;
        self
    }

    /// How long simulated containers take to start (default 1 s).
    pub fn pod_ready_delay(mut self, delay: Duration) -> Self {
        self.pod_ready_delay = delay;
        self
    }

    /// How long to wait for readiness before giving up (default 180 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Send the control plane's own messages to nowhere instead of stderr.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }
}

/// A running local control plane.
///
/// Dropping it stops the process: its standard input is closed, which it
/// takes as the signal to shut down, and it is killed if it has not exited a
/// few seconds later.
#[derive(Debug)]
pub struct ControlPlane {
    child: Child,
    stdin: Option<ChildStdin>,
    kubeconfig: PathBuf,
    data_dir: PathBuf,
    startup: Duration,
}

impl ControlPlane {
    /// Starts a control plane and waits until it is ready: API server
    /// healthy, nodes Ready, the `default` service account present.
    ///
    /// This blocks for the few seconds a start takes.
    pub fn start(options: Options) -> Result<ControlPlane> {
        let program = find_tool("berth-testenv")?;
        Self::start_program(&program, options)
    }

    /// Like [`ControlPlane::start`], with an explicit `berth-testenv` binary.
    pub fn start_program(program: &Path, options: Options) -> Result<ControlPlane> {
        let started = Instant::now();
        let mut cmd = Command::new(program);
        cmd.arg("run")
            .arg("--exit-with-stdin")
            .arg(format!("--nodes={}", options.nodes))
            .arg(format!(
                "--pod-ready-delay={}ms",
                options.pod_ready_delay.as_millis()
            ));
        if let Some(dir) = &options.data_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("create data dir {}", dir.display()), e))?;
            cmd.arg("--data-dir").arg(dir);
        }
        if let Some(port) = options.port {
            cmd.arg(format!("--port={port}"));
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if options.quiet {
                Stdio::null()
            } else {
                Stdio::inherit()
            });
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            path: program.to_path_buf(),
            source,
        })?;
        let stdin = child.stdin.take();
        let Some(stdout) = child.stdout.take() else {
            return Err(Error::io(
                "read control plane output",
                std::io::Error::other("stdout was not captured"),
            ));
        };

        // A reader thread keeps draining stdout for the life of the child,
        // so the child never blocks on a full pipe.
        let (tx, rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(path) = line.strip_prefix(READY_PREFIX) {
                    let _ = tx.send(path.to_string());
                }
            }
        });

        let mut plane = ControlPlane {
            child,
            stdin,
            kubeconfig: PathBuf::new(),
            data_dir: options.data_dir.clone().unwrap_or_default(),
            startup: Duration::ZERO,
        };
        let deadline = started + options.ready_timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(path) => {
                    plane.kubeconfig = PathBuf::from(path);
                    if options.data_dir.is_none()
                        && let Some(dir) = plane.kubeconfig.parent()
                    {
                        plane.data_dir = dir.to_path_buf();
                    }
                    plane.startup = started.elapsed();
                    return Ok(plane);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Some(status) = plane
                .child
                .try_wait()
                .map_err(|e| Error::io("wait for control plane", e))?
            {
                let logs = options
                    .data_dir
                    .as_ref()
                    .map(|d| d.join("logs").display().to_string())
                    .unwrap_or_else(|| "its stderr".to_string());
                return Err(Error::Exited { status, logs });
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady(options.ready_timeout));
            }
        }
    }

    /// The admin kubeconfig (absolute path).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The data directory holding etcd data, PKI, logs and kubeconfigs.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// How long the start took, until ready.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The operating-system process id of the control plane.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the control plane and waits for it to exit (at most `grace`,
    /// then it is killed). Returns whether it exited cleanly by itself.
    pub fn stop(mut self, grace: Duration) -> Result<bool> {
        self.shutdown(grace)
    }

    /// Waits until the process exits by itself or `timeout` passes; returns
    /// whether it exited.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .child
                .try_wait()
                .map_err(|e| Error::io("wait for control plane", e))?
                .is_some()
            {
                return Ok(true);
            }
            if Instant::now() > deadline {
                return Ok(false);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn shutdown(&mut self, grace: Duration) -> Result<bool> {
        // Closing stdin is the shutdown signal (see `--exit-with-stdin`).
        drop(self.stdin.take());
        let clean = match self.wait_exit(grace)? {
            true => self
                .child
                .try_wait()
                .ok()
                .flatten()
                .is_some_and(|s| s.success()),
            false => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                false
            }
        };
        Ok(clean)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.shutdown(Duration::from_secs(20));
        }
    }
}
