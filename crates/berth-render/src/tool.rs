//! Running external tools (kustomize, helm): found in a fixed order, run with
//! a timeout, a cap on output, and a scrubbed environment; a failure returns
//! the tool's own message and never partial output.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a tool could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tool is nowhere to be found.
    #[error(
        "{tool} not found (looked in {searched}); install it or set its path in the configuration"
    )]
    NotFound {
        /// The tool's name.
        tool: String,
        /// Where it was looked for.
        searched: String,
    },
    /// The tool ran longer than allowed and was stopped.
    #[error("{tool} did not finish within {limit:?} and was stopped")]
    Timeout {
        /// The tool.
        tool: String,
        /// The limit.
        limit: Duration,
    },
    /// The tool printed more than allowed and was stopped.
    #[error("{tool} printed more than {limit} bytes and was stopped")]
    OutputTooLarge {
        /// The tool.
        tool: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The tool exited with an error.
    #[error("{tool} failed: {message}")]
    Failed {
        /// The tool.
        tool: String,
        /// What it said on stderr, trimmed, with the working directory's
        /// path removed.
        message: String,
    },
    /// Starting or talking to the tool failed.
    #[error("{tool}: {source}")]
    Io {
        /// The tool.
        tool: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Default limits, as Argo CD's repo server uses them.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);
/// Default cap on a tool's output.
pub const DEFAULT_MAX_OUTPUT: usize = 64 << 20;

/// Finds `name`: an explicit path first, then the project's tools directory
/// (`$BERTH_TOOLS_DIR`, or `tools/bin` above the running executable), then
/// `PATH`.
pub fn find(name: &str, explicit: Option<&Path>) -> Result<PathBuf, Error> {
    let mut searched = Vec::new();
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        searched.push(p.display().to_string());
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("BERTH_TOOLS_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe
            .ancestors()
            .map(|a| a.join("tools").join("bin"))
            .find(|d| d.is_dir())
    {
        dirs.push(d);
    }
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        searched.push(dir.display().to_string());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        searched.push("PATH".into());
    }
    Err(Error::NotFound {
        tool: name.to_string(),
        searched: searched.join(", "),
    })
}

/// One tool invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its working directory.
    pub dir: PathBuf,
    /// The only environment variables it gets, besides a minimal `PATH` and
    /// a private `HOME`.
    pub env: Vec<(String, String)>,
    /// How long it may run.
    pub timeout: Duration,
    /// How much it may print.
    pub max_output: usize,
}

impl Invocation {
    /// An invocation of `program` in `dir` with the default limits.
    pub fn new(program: PathBuf, dir: &Path) -> Self {
        Invocation {
            program,
            args: Vec::new(),
            dir: dir.to_path_buf(),
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    fn name(&self) -> String {
        self.program
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    }

    /// Runs the tool; returns its stdout if it exits 0.
    pub fn run(&self, home: &Path) -> Result<Vec<u8>, Error> {
        let tool = self.name();
        let io = |source| Error::Io {
            tool: tool.clone(),
            source,
        };
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(io)?;
        let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take())
        else {
            return Err(io(std::io::Error::other("pipes not set up")));
        };
        let cap = self.max_output;
        let over_cap = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let over = over_cap.clone();
        let out_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) | Err(_) => return (buf, false),
                    Ok(n) => {
                        if buf.len() + n > cap {
                            over.store(true, std::sync::atomic::Ordering::Relaxed);
                            return (buf, true);
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.by_ref().take(1 << 20).read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait().map_err(io)? {
                break status;
            }
            if over_cap.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::OutputTooLarge {
                    tool,
                    limit: self.max_output,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout {
                    tool,
                    limit: self.timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let (stdout, too_large) = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        if too_large {
            let _ = child.kill();
            return Err(Error::OutputTooLarge {
                tool,
                limit: self.max_output,
            });
        }
        if !status.success() {
            let dir = format!("{}/", self.dir.display());
            let message = String::from_utf8_lossy(&stderr)
                .replace(&dir, "")
                .trim()
                .to_string();
            let message = if message.is_empty() {
                format!("exited with {status}")
            } else {
                message
            };
            return Err(Error::Failed { tool, message });
        }
        Ok(stdout)
    }
}
