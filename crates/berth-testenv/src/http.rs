//! A static HTTP server (lighttpd) for tests, such as a Helm chart
//! repository: `/public/...` is open, `/private/...` needs basic
//! authentication.

use std::path::Path;

use crate::error::{Error, Result};
use crate::git::{Server, basic_auth_conf, free_port, start_lighttpd};

/// Serves `root` on a free loopback port until dropped. Files under
/// `root/private` need `user`/`password`.
pub fn static_http(root: &Path, state_dir: &Path, user: &str, password: &str) -> Result<Server> {
    let port = free_port()?;
    std::fs::create_dir_all(state_dir).map_err(|e| Error::io("create http state dir", e))?;
    let conf = format!(
        r#"server.document-root = "{root}"
server.port = {port}
server.bind = "127.0.0.1"
server.errorlog = "{state}/error.log"
server.modules = ("mod_access", "mod_auth", "mod_authn_file")
mimetype.assign = (".yaml" => "text/yaml", ".tgz" => "application/gzip", "" => "application/octet-stream")
{auth}"#,
        root = root.display(),
        state = state_dir.display(),
        auth = basic_auth_conf(state_dir, user, password, "/private", "charts")?,
    );
    start_lighttpd(state_dir, &conf, &[port])
}
