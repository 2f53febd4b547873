//! Polling cost: applications sharing a repository share its `ls-remote`.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use berth_source::poll::RefPoller;
use berth_source::repo::{CacheOptions, RepoCache};
use berth_testenv::git::{GitFixture, TempDir, git_daemon};

#[test]
fn a_hundred_apps_on_one_repository_cost_one_request_per_interval() {
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo("mono", &[("apps/a/x.yaml", "x: 1\n")])
        .unwrap();
    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/mono.git", daemon.port);
    let tmp = TempDir::new("berth-poll").unwrap();
    let cache =
        Arc::new(RepoCache::new(tmp.path().join("cache"), CacheOptions::default()).unwrap());
    // Long enough that the whole test runs inside one interval.
    let poller = Arc::new(RefPoller::new(cache, Duration::from_secs(3600)));

    let apps: Vec<_> = (0..100)
        .map(|i| {
            let poller = poller.clone();
            // Half the apps spell the URL with `.git`, half without.
            let url = if i % 2 == 0 {
                url.clone()
            } else {
                url.trim_end_matches(".git").to_string()
            };
            std::thread::spawn(move || poller.refs(&url, None).unwrap().len())
        })
        .collect();
    for app in apps {
        assert!(app.join().unwrap() >= 2, "HEAD and main at least");
    }
    assert_eq!(poller.requests(), 1);
    assert_eq!(
        daemon.upload_pack_requests(),
        1,
        "the server saw one request"
    );

    // A push webhook makes the next poll ask again, once.
    let head = repo
        .commit(&[("apps/a/x.yaml", "x: 2\n")], "change")
        .unwrap();
    repo.push("main").unwrap();
    poller.invalidate(&url);
    for _ in 0..10 {
        let refs = poller.refs(&url, None).unwrap();
        assert_eq!(
            refs.iter()
                .find(|r| r.name == "refs/heads/main")
                .unwrap()
                .target,
            head
        );
    }
    assert_eq!(poller.requests(), 2);
    assert_eq!(daemon.upload_pack_requests(), 2);
}

#[test]
fn failures_are_remembered_for_the_interval() {
    let fixture = GitFixture::new().unwrap();
    fixture.create_repo("flaky", &[("a", "1")]).unwrap();
    let mut daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/flaky.git", daemon.port);
    daemon.stop();
    let tmp = TempDir::new("berth-poll").unwrap();
    let cache =
        Arc::new(RepoCache::new(tmp.path().join("cache"), CacheOptions::default()).unwrap());
    let poller = RefPoller::new(cache, Duration::from_secs(3600));
    for _ in 0..20 {
        assert!(poller.refs(&url, None).is_err());
    }
    assert_eq!(poller.requests(), 1, "a broken repository is not hammered");
}
