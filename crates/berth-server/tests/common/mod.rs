//! What the API tests share.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs, dead_code)]

use std::time::Duration;

/// Reads server-sent events into `seen` until it contains `needle`.
pub async fn read_until(response: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {needle} in the stream: {seen}"))
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}
