//! An application of 5,000 ConfigMaps on the local control plane: it syncs,
//! and the Application stays within its size budget, the cut marked in its
//! status and every resource's result kept in SyncRecords.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::time::Duration;

mod common;

use common::{Harness, kubectl, until};
use serde_json::Value;

const COUNT: usize = 5000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_resources_stay_within_the_status_budget() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("berth_controller=debug"))
        .with_test_writer()
        .try_init();
    let mut manifest = String::new();
    for i in 0..COUNT {
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: item-{i:05}\ndata:\n  index: \"{i}\"\n"
        ));
    }
    let h = Harness::start(
        "scale",
        &[("app/items.yaml", &manifest)],
        "",
        Duration::from_secs(3600),
    )
    .await;
    until("compared: OutOfSync", || {
        h.app()["status"]["sync"]["status"] == "OutOfSync"
    })
    .await;
    h.request_sync();
    let mut app = Value::Null;
    for _ in 0..1800 {
        app = h.app();
        if app["status"]["operationState"]["phase"] == "Succeeded"
            && app["status"]["sync"]["status"] == "Synced"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app["status"]["sync"]["status"], "Synced");
    let size = serde_json::to_vec(&app).unwrap().len();
    assert!(size < 512 * 1024, "the Application is {size} bytes");

    let resources = app["status"]["resources"].as_array().unwrap();
    assert!(resources.len() < COUNT);
    assert_eq!(app["status"]["berth"]["resources"]["total"], COUNT);
    assert_eq!(
        app["status"]["berth"]["resources"]["shown"],
        resources.len()
    );

    let op = &app["status"]["operationState"];
    assert_eq!(op["berth"]["resources"]["total"], COUNT);
    let shown = op["syncResult"]["resources"].as_array().unwrap().len();
    assert_eq!(op["berth"]["resources"]["shown"], shown);
    assert!(shown < COUNT);

    // Every result is in the SyncRecords.
    let records: Value = serde_json::from_str(&kubectl(
        &h.ns,
        &[
            "get",
            "syncrecords.berth.io",
            "-n",
            &h.control,
            "-l",
            &format!("berth.io/application={}", h.name),
            "-o",
            "json",
        ],
        None,
    ))
    .unwrap();
    let items = records["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let base = op["berth"]["syncRecord"].as_str().unwrap();
    let mut total = 0;
    for r in items {
        assert!(r["metadata"]["name"].as_str().unwrap().starts_with(base));
        assert_eq!(r["spec"]["resourceCount"], COUNT);
        assert_eq!(r["spec"]["phase"], "Succeeded");
        total += r["spec"]["resources"].as_array().unwrap().len();
    }
    assert_eq!(total, COUNT, "every resource's result recorded");
    h.finish().await;
}
