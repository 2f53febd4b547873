//! Real Git servers for tests: `git daemon` (git://), smart HTTP through
//! `git http-backend` behind lighttpd with basic authentication, and sshd on
//! a loopback port. Repositories are made and changed with the git CLI.
//!
//! Every server listens on 127.0.0.1 on a free port and is stopped when its
//! handle is dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(prefix: &str) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        Ok(TempDir(dir))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs git with a fixed identity and no user or system configuration, and
/// returns its stdout.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Berth Test")
        .env("GIT_AUTHOR_EMAIL", "test@berth.invalid")
        .env("GIT_COMMITTER_NAME", "Berth Test")
        .env("GIT_COMMITTER_EMAIL", "test@berth.invalid")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| Error::io("run git", e))?;
    if !out.status.success() {
        return Err(Error::io(
            format!("git {}", args.join(" ")),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).to_string()),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A directory of bare repositories (what the servers serve) plus a working
/// clone of each, to commit and push from.
#[derive(Debug)]
pub struct GitFixture {
    dir: TempDir,
}

/// One repository of a [`GitFixture`].
#[derive(Debug, Clone)]
pub struct Repo {
    /// The bare repository that servers serve.
    pub bare: PathBuf,
    /// A working clone for making commits.
    pub work: PathBuf,
    /// Its name (`NAME.git` under the served directory).
    pub name: String,
}

impl GitFixture {
    /// An empty fixture.
    pub fn new() -> Result<GitFixture> {
        let dir = TempDir::new("berth-git")?;
        for sub in ["srv", "work"] {
            std::fs::create_dir_all(dir.path().join(sub))
                .map_err(|e| Error::io("create fixture dirs", e))?;
        }
        Ok(GitFixture { dir })
    }

    /// The directory holding the bare repositories.
    pub fn served_dir(&self) -> PathBuf {
        self.dir.path().join("srv")
    }

    /// The fixture's own directory, for server state and keys.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates `NAME.git` with a `main` branch holding `files` in one commit.
    pub fn create_repo(&self, name: &str, files: &[(&str, &str)]) -> Result<Repo> {
        let bare = self.served_dir().join(format!("{name}.git"));
        let work = self.dir.path().join("work").join(name);
        git(
            &self.served_dir(),
            &[
                "init",
                "--bare",
                "--initial-branch=main",
                &format!("{name}.git"),
            ],
        )?;
        // Let servers (and their CGI) export it without extra setup.
        std::fs::File::create(bare.join("git-daemon-export-ok"))
            .map_err(|e| Error::io("mark export", e))?;
        git(&bare, &["config", "http.receivepack", "true"])?;
        git(&bare, &["config", "uploadpack.allowAnySHA1InWant", "true"])?;
        git(
            self.dir.path(),
            &[
                "clone",
                "--quiet",
                &bare.to_string_lossy(),
                &work.to_string_lossy(),
            ],
        )?;
        git(&work, &["checkout", "--quiet", "-B", "main"])?;
        let repo = Repo {
            bare,
            work,
            name: name.to_string(),
        };
        repo.commit(files, "initial commit")?;
        repo.push("main")?;
        Ok(repo)
    }
}

impl Repo {
    /// Writes `files` (path, content) into the working clone and commits
    /// them; returns the new commit's SHA.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> Result<String> {
        for (path, content) in files {
            let full = self.work.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io("create dirs", e))?;
            }
            std::fs::write(&full, content).map_err(|e| Error::io(format!("write {path}"), e))?;
        }
        git(&self.work, &["add", "--all"])?;
        git(
            &self.work,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        )?;
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Pushes the working clone's HEAD to `branch` (forcing, so rewritten
    /// history can be tested).
    pub fn push(&self, branch: &str) -> Result<()> {
        git(
            &self.work,
            &[
                "push",
                "--quiet",
                "--force",
                "origin",
                &format!("HEAD:refs/heads/{branch}"),
            ],
        )?;
        Ok(())
    }

    /// Creates and pushes a tag; `annotated` makes a tag object.
    pub fn tag(&self, name: &str, annotated: bool) -> Result<()> {
        if annotated {
            git(
                &self.work,
                &["tag", "-a", name, "-m", &format!("release {name}")],
            )?;
        } else {
            git(&self.work, &["tag", name])?;
        }
        git(
            &self.work,
            &["push", "--quiet", "origin", &format!("refs/tags/{name}")],
        )?;
        Ok(())
    }

    /// Runs git in the working clone.
    pub fn git(&self, args: &[&str]) -> Result<String> {
        git(&self.work, args)
    }
}

pub(crate) fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("pick a free port", e))?;
    let port = l
        .local_addr()
        .map_err(|e| Error::io("pick a free port", e))?
        .port();
    Ok(port)
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::io(
                format!("start {what}"),
                std::io::Error::other(format!("exited with {status}")),
            ));
        }
        if Instant::now() > deadline {
            return Err(Error::io(
                format!("start {what}"),
                std::io::Error::other("not listening after 30s"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running server process, killed on drop.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Where it logs each request, when it does.
    pub log: Option<PathBuf>,
}

impl Server {
    /// How many upload-pack requests (ls-remote or fetch) a logging server
    /// has served.
    pub fn upload_pack_requests(&self) -> usize {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|s| {
                s.lines()
                    .filter(|l| l.contains("Request upload-pack"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Stops the server now (to test an unreachable repository): SIGTERM so
    /// that it stops its own children, SIGKILL if it lingers.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `git daemon` serving the fixture's repositories as `git://127.0.0.1:PORT/NAME.git`.
pub fn git_daemon(fixture: &GitFixture) -> Result<Server> {
    let port = free_port()?;
    let srv = fixture.served_dir();
    let log = fixture.dir().join(format!("git-daemon-{port}.log"));
    let log_file = std::fs::File::create(&log).map_err(|e| Error::io("create daemon log", e))?;
    // The daemon itself, not the `git daemon` wrapper, so that stopping
    // the child stops the server.
    let mut child = Command::new(git_exec_path()?.join("git-daemon"))
        .args([
            "--reuseaddr",
            "--export-all",
            "--verbose",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", srv.display()))
        .arg(&srv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .map_err(|e| Error::io("start git daemon", e))?;
    wait_for_port(port, &mut child, "git daemon")?;
    Ok(Server {
        child,
        port,
        log: Some(log),
    })
}

/// lighttpd running `git http-backend`: `http://127.0.0.1:PORT/git/NAME.git`
/// needs basic authentication as `user`/`password`; `/anon/NAME.git` needs none.
pub fn git_http(fixture: &GitFixture, user: &str, password: &str) -> Result<Server> {
    let port = free_port()?;
    let dir = fixture.dir().join(format!("http-{port}"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create http dir", e))?;
    let conf = format!(
        r#"server.document-root = "{srv}"
server.port = {port}
server.bind = "127.0.0.1"
server.errorlog = "{dir}/error.log"
server.modules = ("mod_alias", "mod_setenv", "mod_cgi", "mod_auth", "mod_authn_file")
{backend}"#,
        srv = fixture.served_dir().display(),
        dir = dir.display(),
        backend = git_backend_conf(fixture, &dir, user, password, &["git", "anon"])?,
    );
    start_lighttpd(&dir, &conf, &[port])
}

/// lighttpd serving `git http-backend` over HTTPS with a certificate from a
/// CA of its own, on two ports: `port` asks no client certificate, and
/// serves `/git/NAME.git` (basic authentication), `/anon/NAME.git` and
/// `/bearer/NAME.git` (needs `Authorization: Bearer TOKEN`); `mtls_port`
/// requires a client certificate signed by the same CA, on `/anon/...`.
#[derive(Debug)]
pub struct HttpsServer {
    /// The server (its `port` is the one without client certificates).
    pub server: Server,
    /// The port that requires a client certificate.
    pub mtls_port: u16,
    /// The CA certificate (PEM) that signed the server and client certificates.
    pub ca_pem: String,
    /// A client certificate (PEM) the mTLS port accepts.
    pub client_cert_pem: String,
    /// Its private key (PEM).
    pub client_key_pem: String,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| Error::io("run openssl", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::io(
            format!("openssl {}", args.join(" ")),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).to_string()),
        ))
    }
}

/// Starts [`HttpsServer`] for the fixture's repositories.
pub fn git_https(
    fixture: &GitFixture,
    user: &str,
    password: &str,
    bearer_token: &str,
) -> Result<HttpsServer> {
    let (port, mtls_port) = (free_port()?, free_port()?);
    let dir = fixture.dir().join(format!("https-{port}"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create https dir", e))?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "30",
                "-subj",
                "/CN=berth-test-ca",
            ],
        ]
        .concat(),
    )?;
    for (name, usage, san) in [
        (
            "server",
            "serverAuth",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        ),
        ("client", "clientAuth", ""),
    ] {
        openssl(
            &dir,
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN=berth-test-{name}"),
                ],
            ]
            .concat(),
        )?;
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("{san}extendedKeyUsage={usage}\nbasicConstraints=CA:FALSE\n"),
        )
        .map_err(|e| Error::io("write ext", e))?;
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "30",
                "-extfile",
                &format!("{name}.ext"),
            ],
        )?;
    }
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| Error::io(format!("read {f}"), e))
    };
    let conf = format!(
        r#"server.document-root = "{srv}"
server.port = {port}
server.bind = "127.0.0.1"
server.errorlog = "{dir}/error.log"
server.modules = ("mod_access", "mod_alias", "mod_setenv", "mod_cgi", "mod_auth", "mod_authn_file", "mod_openssl")
ssl.engine = "enable"
ssl.pemfile = "{dir}/server.crt"
ssl.privkey = "{dir}/server.key"
$SERVER["socket"] == "127.0.0.1:{mtls_port}" {{
  ssl.engine = "enable"
  ssl.pemfile = "{dir}/server.crt"
  ssl.privkey = "{dir}/server.key"
  ssl.ca-file = "{dir}/ca.crt"
  ssl.verifyclient.activate = "enable"
  ssl.verifyclient.enforce = "enable"
}}
{backend}$HTTP["url"] =~ "^/bearer" {{
  $REQUEST_HEADER["Authorization"] != "Bearer {bearer_token}" {{
    url.access-deny = ("")
  }}
}}
"#,
        srv = fixture.served_dir().display(),
        dir = dir.display(),
        backend = git_backend_conf(fixture, &dir, user, password, &["git", "anon", "bearer"])?,
    );
    let server = start_lighttpd(&dir, &conf, &[port, mtls_port])?;
    Ok(HttpsServer {
        server,
        mtls_port,
        ca_pem: read("ca.crt")?,
        client_cert_pem: read("client.crt")?,
        client_key_pem: read("client.key")?,
    })
}

/// Writes a users file for `user`/`password` in `dir` and returns the
/// lighttpd lines requiring basic authentication under `prefix`.
pub(crate) fn basic_auth_conf(
    dir: &Path,
    user: &str,
    password: &str,
    prefix: &str,
    realm: &str,
) -> Result<String> {
    let users = dir.join("users");
    std::fs::write(&users, format!("{user}:{password}\n"))
        .map_err(|e| Error::io("write users", e))?;
    Ok(format!(
        "auth.backend = \"plain\"\nauth.backend.plain.userfile = \"{}\"\n\
         auth.require = (\"{prefix}\" => (\"method\" => \"basic\", \"realm\" => \"{realm}\", \"require\" => \"valid-user\"))\n",
        users.display()
    ))
}

/// The lighttpd lines serving the fixture's repositories through `git
/// http-backend` under each of `prefixes` (`/git/NAME.git`...), `/git` with
/// basic authentication.
fn git_backend_conf(
    fixture: &GitFixture,
    dir: &Path,
    user: &str,
    password: &str,
    prefixes: &[&str],
) -> Result<String> {
    let backend = git_exec_path()?.join("git-http-backend");
    let aliases: Vec<String> = prefixes
        .iter()
        .map(|p| format!("\"/{p}\" => \"{}\"", backend.display()))
        .collect();
    Ok(format!(
        "alias.url = ({})\n$HTTP[\"url\"] =~ \"^/({})\" {{\n  cgi.assign = (\"\" => \"\")\n  \
         setenv.set-environment = (\"GIT_PROJECT_ROOT\" => \"{}\", \"GIT_HTTP_EXPORT_ALL\" => \"\")\n}}\n{}",
        aliases.join(", "),
        prefixes.join("|"),
        fixture.served_dir().display(),
        basic_auth_conf(dir, user, password, "/git", "git")?
    ))
}

/// Writes `conf` and runs lighttpd on it until every port listens.
pub(crate) fn start_lighttpd(dir: &Path, conf: &str, ports: &[u16]) -> Result<Server> {
    let conf_path = dir.join("lighttpd.conf");
    std::fs::write(&conf_path, conf).map_err(|e| Error::io("write lighttpd.conf", e))?;
    let mut child = Command::new(find_sbin("lighttpd")?)
        .arg("-D")
        .arg("-f")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("start lighttpd", e))?;
    for port in ports {
        wait_for_port(*port, &mut child, "lighttpd")?;
    }
    Ok(Server {
        child,
        port: ports[0],
        log: None,
    })
}

/// An sshd on a loopback port with its own host key, accepting one client
/// key for the current user.
#[derive(Debug)]
pub struct SshServer {
    /// The server process.
    pub server: Server,
    /// The client's private key (OpenSSH format).
    pub client_key: String,
    /// A known_hosts file naming this server's host key.
    pub known_hosts: PathBuf,
    /// The user to connect as.
    pub user: String,
}

impl SshServer {
    /// The URL of a repository of the fixture.
    pub fn url(&self, fixture: &GitFixture, name: &str) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}/{name}.git",
            self.user,
            self.server.port,
            fixture.served_dir().display()
        )
    }
}

/// Starts sshd for the fixture's repositories.
pub fn git_ssh(fixture: &GitFixture) -> Result<SshServer> {
    let port = free_port()?;
    let dir = fixture.dir().join(format!("ssh-{port}"));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create ssh dir", e))?;
    let keygen = |path: &Path| -> Result<()> {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .map_err(|e| Error::io("run ssh-keygen", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::io(
                "ssh-keygen",
                std::io::Error::other(format!("exited with {status}")),
            ))
        }
    };
    keygen(&dir.join("host"))?;
    keygen(&dir.join("client"))?;
    std::fs::copy(dir.join("client.pub"), dir.join("authorized_keys"))
        .map_err(|e| Error::io("authorized_keys", e))?;
    let host_pub =
        std::fs::read_to_string(dir.join("host.pub")).map_err(|e| Error::io("read host key", e))?;
    let mut parts = host_pub.split_whitespace();
    let known = format!(
        "[127.0.0.1]:{port} {} {}\n",
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default()
    );
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, known).map_err(|e| Error::io("write known_hosts", e))?;
    // sshd needs its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let conf = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host\nAuthorizedKeysFile {dir}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
         PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPidFile {dir}/sshd.pid\n\
         LogLevel ERROR\n",
        dir = dir.display()
    );
    let conf_path = dir.join("sshd_config");
    std::fs::write(&conf_path, conf).map_err(|e| Error::io("write sshd_config", e))?;
    let mut child = Command::new(find_sbin("sshd")?)
        .args(["-D", "-e", "-f"])
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("start sshd", e))?;
    wait_for_port(port, &mut child, "sshd")?;
    let client_key =
        std::fs::read_to_string(dir.join("client")).map_err(|e| Error::io("read client key", e))?;
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into());
    Ok(SshServer {
        server: Server {
            child,
            port,
            log: None,
        },
        client_key,
        known_hosts,
        user,
    })
}

fn git_exec_path() -> Result<PathBuf> {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .map_err(|e| Error::io("git --exec-path", e))?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

pub(crate) fn find_sbin(name: &str) -> Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::ToolNotFound {
        name: name.to_string(),
        searched: "/usr/sbin, /usr/local/sbin, /sbin, /usr/bin".into(),
        build_command: "scripts/install-deps.sh",
    })
}

/// A TCP proxy on a loopback port that forwards to `target_port` and cuts
/// every connection after relaying `cut_after` bytes from the server: a
/// server dying in the middle of a transfer, reproduced for real.
#[derive(Debug)]
pub struct CuttingProxy {
    /// The proxy's port.
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CuttingProxy {
    /// Starts the proxy.
    pub fn start(target_port: u16, cut_after: usize) -> Result<CuttingProxy> {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("bind proxy", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("proxy address", e))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("proxy nonblocking", e))?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let (Ok(mut c_read), Ok(mut s_write)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                // Client to server: relay everything.
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                // Server to client: relay up to the cut, then drop both.
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    let mut sent = 0;
                    while sent < cut_after {
                        let want = buf.len().min(cut_after - sent);
                        match s_read.read(&mut buf[..want]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if c_write.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                                sent += n;
                            }
                        }
                    }
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                    let _ = s_read.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Ok(CuttingProxy { port, stop })
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
