//! Single sign-on against a real OpenID Connect provider run by the test
//! (`mockidp`, built by `testenv/build.sh`): the authorization code flow
//! with PKCE through the server's `/auth/login` and `/auth/callback`, the
//! session cookie, groups from the token mapped through RBAC, one use per
//! login state, refused return URLs; and ID token checks (signature,
//! audience, nonce) on a token the provider issued.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use berth_server::oidc::{Oidc, OidcConfig, challenge};
use berth_server::{Server, ServerConfig};
use berth_testenv::TestNamespace;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

/// The provider, stopped when dropped.
struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider(groups: &str) -> Provider {
    let tools = std::env::var("BERTH_TOOLS_DIR").expect("BERTH_TOOLS_DIR (make test sets it)");
    let mut child = Command::new(format!("{tools}/mockidp"))
        .args([
            "-client-id",
            "berth",
            "-client-secret",
            "berth-secret",
            "-sub",
            "alice",
            "-email",
            "alice@example.com",
            "-groups",
            groups,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tools/bin/mockidp (testenv/build.sh builds it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let issuer = line.trim().strip_prefix("ISSUER=").unwrap().to_string();
    Provider { child, issuer }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()[LOCATION].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_with_pkce() {
    let idp = provider("devs,qa");
    let ns = TestNamespace::new("oidc").await.unwrap();
    let control = format!("{}-argocd", ns.name);
    berth_cluster::bootstrap::install(&ns.client, &control)
        .await
        .unwrap();
    let kubectl = |args: &[&str], stdin: Option<&str>| {
        berth_testenv::kubectl_ok(&ns.kubeconfig, args, stdin).unwrap()
    };
    let server = Server::start(
        ns.client.clone(),
        ServerConfig {
            namespace: control.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            views: None,
        },
    )
    .await
    .unwrap();
    let base = server.url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Not configured yet: said so.
    let r = http.get(format!("{base}/auth/login")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("oidc.config"));

    // Configured as in Argo CD, the secret by reference to argocd-secret.
    kubectl(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: {control}\ndata:\n  oidc.config: |\n    name: Test IdP\n    issuer: {}\n    clientID: berth\n    clientSecret: $oidc.clientSecret\n    requestedScopes: [openid, profile, email, groups]\n",
            idp.issuer
        )),
    );
    kubectl(
        &[
            "patch",
            "secret",
            "argocd-secret",
            "-n",
            &control,
            "--type",
            "merge",
            "-p",
            r#"{"stringData":{"oidc.clientSecret":"berth-secret"}}"#,
        ],
        None,
    );
    kubectl(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-rbac-cm\n  namespace: {control}\ndata:\n  policy.csv: |\n    g, devs, role:readonly\n"
        )),
    );
    let settings: Value = http
        .get(format!("{base}/api/v1/settings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["oidcConfig"]["issuer"], idp.issuer.as_str());
    assert_eq!(settings["oidcConfig"]["name"], "Test IdP");

    // The flow, one redirect at a time, as a browser follows it.
    let r = http
        .get(format!("{base}/auth/login?return_url=/applications"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to_idp = location(&r);
    assert!(to_idp.starts_with(&idp.issuer), "{to_idp}");
    assert!(to_idp.contains("code_challenge_method=S256"), "{to_idp}");
    assert!(to_idp.contains("code_challenge="), "{to_idp}");
    let r = http.get(&to_idp).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{base}/auth/callback?")),
        "{back}"
    );
    let r = http.get(&back).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.headers());
    assert_eq!(location(&r), "/applications");
    let cookie = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let session = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("argocd.token=")
        .unwrap()
        .to_string();

    // The session: the token's subject, its groups mapped by RBAC.
    let with_cookie = |path: &str| {
        http.get(format!("{base}{path}"))
            .header(COOKIE, format!("argocd.token={session}"))
            .send()
    };
    let who: Value = with_cookie("/api/v1/session/userinfo")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["username"], "alice");
    assert_eq!(who["groups"], json!(["devs", "qa"]));
    assert_eq!(
        with_cookie("/api/v1/applications").await.unwrap().status(),
        StatusCode::OK,
        "devs are read-only"
    );
    let r = http
        .post(format!("{base}/api/v1/projects"))
        .bearer_auth(&session)
        .json(&json!({"project": {"metadata": {"name": "x"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "read-only");

    // A login state serves once; unknown ones and foreign return URLs are
    // refused.
    assert_eq!(
        http.get(&back).send().await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let r = http
        .get(format!("{base}/auth/callback?code=x&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = http
        .get(format!(
            "{base}/auth/login?return_url=https%3A%2F%2Fevil.example%2F"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The CLI's loopback listener gets the token in its URL.
    let r = http
        .get(format!(
            "{base}/auth/login?return_url=http%3A%2F%2F127.0.0.1%3A8085%2Fdone"
        ))
        .send()
        .await
        .unwrap();
    let r = http.get(location(&r)).send().await.unwrap();
    let r = http.get(location(&r)).send().await.unwrap();
    let cli = location(&r);
    assert!(
        cli.starts_with("http://127.0.0.1:8085/done?token="),
        "{cli}"
    );

    // ID token checks, on a token the provider issued for a login made
    // here directly.
    let verifier = "a-verifier-of-at-least-forty-three-characters-long";
    let discovery: Value = http
        .get(format!("{}/.well-known/openid-configuration", idp.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut authorize =
        reqwest::Url::parse(discovery["authorization_endpoint"].as_str().unwrap()).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "berth")
        .append_pair("redirect_uri", "http://127.0.0.1:1/cb")
        .append_pair("scope", "openid email groups")
        .append_pair("state", "s")
        .append_pair("nonce", "n1")
        .append_pair("code_challenge", &challenge(verifier))
        .append_pair("code_challenge_method", "S256");
    let code_for = async || {
        let r = http.get(authorize.as_str()).send().await.unwrap();
        reqwest::Url::parse(&location(&r))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .to_string()
    };
    let token_url = discovery["token_endpoint"].as_str().unwrap();
    let exchange = |code: String, verifier: &str| {
        let body = reqwest::Url::parse_with_params(
            "http://x/",
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "http://127.0.0.1:1/cb"),
                ("client_id", "berth"),
                ("client_secret", "berth-secret"),
                ("code_verifier", verifier),
            ],
        )
        .unwrap()
        .query()
        .unwrap()
        .to_string();
        http.post(token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert!(
        !exchange(
            code_for().await,
            "the-wrong-verifier-the-wrong-verifier-wrong"
        )
        .await
        .unwrap()
        .status()
        .is_success(),
        "the provider checks PKCE"
    );
    let tokens: Value = exchange(code_for().await, verifier)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let config = OidcConfig {
        name: String::new(),
        issuer: idp.issuer.clone(),
        client_id: "berth".into(),
        client_secret: None,
        scopes: vec![],
    };
    let oidc = Oidc::default();
    let identity = oidc.verify_id_token(&config, id_token, "n1").await.unwrap();
    assert_eq!(identity.subject, "alice");
    assert_eq!(identity.email.as_deref(), Some("alice@example.com"));
    assert!(
        oidc.verify_id_token(&config, id_token, "n2").await.is_err(),
        "another login's nonce"
    );
    let mut elsewhere = config.clone();
    elsewhere.client_id = "another-client".into();
    assert!(
        oidc.verify_id_token(&elsewhere, id_token, "n1")
            .await
            .is_err(),
        "for another audience"
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = id_token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("mallory");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(payload.to_string()),
        parts[2]
    );
    assert!(
        oidc.verify_id_token(&config, &forged, "n1").await.is_err(),
        "a changed payload breaks the signature"
    );
    drop(server);
}
