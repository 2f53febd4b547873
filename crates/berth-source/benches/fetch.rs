//! Change detection and fetch on a large repository, against `git` itself.
//!
//! `cargo bench -p berth-source --bench fetch [-- ROUNDS]`
//!
//! Builds a repository of 10,000 commits over 5,000 files, serves it with
//! git daemon, then for each round pushes one commit and times (a) Berth's
//! `RepoCache::resolve("main")` into a warm cache — ls-remote, fetch, read the
//! commit — and (b) `git fetch` into a warm bare mirror, alternating which
//! goes first. Also counts the requests 100 applications polling the
//! repository send in one interval. Prints a Markdown table of medians.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_source::poll::RefPoller;
use berth_source::repo::{CacheOptions, RepoCache};
use berth_testenv::git::{GitFixture, TempDir, git, git_daemon};

const FILES: usize = 5_000;
const COMMITS: usize = 10_000;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(15);
    let fixture = GitFixture::new().unwrap();
    let repo = fixture
        .create_repo("big", &[("README.md", "bench\n")])
        .unwrap();

    // 10,000 commits over 5,000 files, through git fast-import.
    let started = Instant::now();
    let mut stream = Vec::new();
    let mut when = 1_700_000_000u64;
    writeln!(stream, "commit refs/heads/main\ncommitter Bench <bench@berth.invalid> {when} +0000\ndata 4\ninit\nfrom refs/heads/main^0").unwrap();
    // One file modification in fast-import's syntax: file `f` at version `v`.
    let modify = |stream: &mut Vec<u8>, f: usize, v: usize| {
        let body = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{f}\ndata:\n  v: \"{v}\"\n"
        );
        let path = format!("apps/app-{:03}/cm-{f:04}.yaml", f % 100);
        writeln!(
            stream,
            "M 100644 inline {path}\ndata {}\n{body}",
            body.len()
        )
        .unwrap();
    };
    for f in 0..FILES {
        modify(&mut stream, f, 0);
    }
    for c in 1..COMMITS {
        when += 60;
        let f = c % FILES;
        let msg = format!("change {c}");
        writeln!(stream, "commit refs/heads/main\ncommitter Bench <bench@berth.invalid> {when} +0000\ndata {}\n{msg}", msg.len()).unwrap();
        modify(&mut stream, f, c);
    }
    let mut fi = Command::new("git")
        .current_dir(&repo.work)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    fi.stdin.take().unwrap().write_all(&stream).unwrap();
    assert!(fi.wait().unwrap().success());
    git(&repo.work, &["reset", "--quiet", "--hard", "main"]).unwrap();
    repo.push("main").unwrap();
    let count = git(&repo.work, &["rev-list", "--count", "HEAD"]).unwrap();
    eprintln!(
        "repository: {count} commits, {FILES} files, built in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let daemon = git_daemon(&fixture).unwrap();
    let url = format!("git://127.0.0.1:{}/big.git", daemon.port);
    let tmp = TempDir::new("berth-bench").unwrap();
    let cache = RepoCache::new(tmp.path().join("cache"), CacheOptions::default()).unwrap();

    // Cold: first fetch of the whole repository.
    let t = Instant::now();
    cache.resolve(&url, None, "main", "").unwrap();
    let berth_cold = t.elapsed();
    let mirror = tmp.path().join("mirror.git");
    let t = Instant::now();
    git(
        tmp.path(),
        &[
            "clone",
            "--quiet",
            "--bare",
            &url,
            &mirror.to_string_lossy(),
        ],
    )
    .unwrap();
    let git_cold = t.elapsed();

    let mut berth_times = Vec::new();
    let mut git_times = Vec::new();
    for round in 0..rounds {
        let sha = repo
            .commit(
                &[(
                    &format!("apps/app-007/round-{round}.yaml"),
                    "kind: ConfigMap\n",
                )],
                &format!("round {round}"),
            )
            .unwrap();
        repo.push("main").unwrap();
        let berth = || {
            let t = Instant::now();
            let rev = cache.resolve(&url, None, "main", "").unwrap();
            assert_eq!(rev.resolved.sha, sha);
            t.elapsed()
        };
        let peer = || {
            let t = Instant::now();
            git(
                &mirror,
                &["fetch", "--quiet", "origin", "+refs/heads/*:refs/heads/*"],
            )
            .unwrap();
            let e = t.elapsed();
            assert_eq!(git(&mirror, &["rev-parse", "main"]).unwrap(), sha);
            e
        };
        if round % 2 == 0 {
            berth_times.push(berth());
            git_times.push(peer());
        } else {
            git_times.push(peer());
            berth_times.push(berth());
        }
    }

    // Polling cost: 100 applications on this repository, one interval.
    let cache = Arc::new(cache);
    let before = daemon.upload_pack_requests();
    let poller = Arc::new(RefPoller::new(cache, Duration::from_secs(180)));
    let apps: Vec<_> = (0..100)
        .map(|_| {
            let (p, u) = (poller.clone(), url.clone());
            std::thread::spawn(move || p.refs(&u, None).map(|r| r.len()).unwrap_or(0))
        })
        .collect();
    for a in apps {
        a.join().unwrap();
    }
    let sent = daemon.upload_pack_requests() - before;

    let (b, g) = (median(berth_times), median(git_times));
    println!("| measure ({rounds} rounds) | Berth | git CLI | ratio Berth/git |");
    println!("|---|---|---|---|");
    println!(
        "| new commit detected and fetched, warm cache (median) | {} | {} | {:.2} |",
        ms(b),
        ms(g),
        b.as_secs_f64() / g.as_secs_f64()
    );
    println!(
        "| first fetch of the whole repository (1 run) | {} | {} | {:.2} |",
        ms(berth_cold),
        ms(git_cold),
        berth_cold.as_secs_f64() / git_cold.as_secs_f64()
    );
    println!("| requests sent by 100 apps polling in one interval | {sent} | | |");
}
