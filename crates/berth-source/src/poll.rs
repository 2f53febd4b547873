//! Change detection that scales with repositories, not applications: one
//! `ls-remote` per repository (and set of credentials) per poll interval,
//! however many applications share it. Callers asking while a request is
//! in flight wait for its answer instead of sending their own; a failure is
//! remembered for the interval too, so a broken repository is not hammered.
//! A push webhook calls [`RefPoller::invalidate`] to look again at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::creds::Credentials;
use crate::repo::RepoCache;
use crate::revision::RemoteRef;
use crate::url::RepoUrl;

/// What a poll returns: the refs, or why they could not be listed (shared:
/// the same answer is handed to every caller of the interval).
pub type PollResult = Result<Arc<Vec<RemoteRef>>, Arc<crate::repo::Error>>;

#[derive(Default)]
struct Entry {
    last: Option<(Instant, PollResult)>,
}

/// Shares `ls-remote` answers between the applications of a repository.
pub struct RefPoller {
    cache: Arc<RepoCache>,
    /// Milliseconds: changed at run time when the setting changes.
    interval: AtomicU64,
    entries: Mutex<HashMap<String, Arc<Mutex<Entry>>>>,
    requests: AtomicU64,
}

impl std::fmt::Debug for RefPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefPoller")
            .field("interval", &self.interval())
            .finish()
    }
}

impl RefPoller {
    /// A poller asking each repository at most once per `interval`.
    pub fn new(cache: Arc<RepoCache>, interval: Duration) -> Self {
        RefPoller {
            cache,
            interval: AtomicU64::new(interval.as_millis().min(u64::MAX as u128) as u64),
            entries: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
        }
    }

    /// The repository's refs, at most `interval` old.
    pub fn refs(&self, url: &str, creds: Option<&Credentials>) -> PollResult {
        let key = match entry_key(url, creds) {
            Ok(k) => k,
            Err(e) => return Err(Arc::new(e.into())),
        };
        let entry = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.entry(key).or_default().clone()
        };
        // Holding the entry's lock across the request is what makes callers
        // of the same repository wait for one answer.
        let mut entry = entry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, result)) = &entry.last
            && at.elapsed() < self.interval()
        {
            return result.clone();
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let result = self
            .cache
            .ls_remote(url, creds)
            .map(Arc::new)
            .map_err(Arc::new);
        entry.last = Some((Instant::now(), result.clone()));
        result
    }

    /// Forgets what is known of `url`, so the next call asks the server
    /// (a webhook said something was pushed).
    pub fn invalidate(&self, url: &str) {
        let Ok(parsed) = RepoUrl::parse(url) else {
            return;
        };
        let prefix = format!("{}#", parsed.cache_key());
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (key, entry) in entries.iter() {
            if key.starts_with(&prefix) {
                entry.lock().unwrap_or_else(|p| p.into_inner()).last = None;
            }
        }
    }

    /// How old an answer may be.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval.load(Ordering::Relaxed))
    }

    /// Changes how old an answer may be (the setting changed).
    pub fn set_interval(&self, interval: Duration) {
        self.interval.store(
            interval.as_millis().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// How many `ls-remote` requests were sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// One entry per repository and set of credentials: applications that reach
/// the same repository with different credentials do not share answers, so
/// one that may not read it never sees what another may.
fn entry_key(url: &str, creds: Option<&Credentials>) -> Result<String, crate::url::Error> {
    let parsed = RepoUrl::parse(url)?;
    let mut hash: u64 = 0xcbf29ce484222325;
    let mut feed = |s: &str| {
        for b in s.bytes().chain([0u8]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x100000001b3);
        }
    };
    feed(&format!("{:?}", parsed.transport));
    if let Some(c) = creds {
        feed(c.username.as_deref().unwrap_or(""));
        feed(c.password.as_ref().map(|p| p.expose()).unwrap_or(""));
        feed(c.ssh_private_key.as_ref().map(|p| p.expose()).unwrap_or(""));
        feed(c.bearer_token.as_ref().map(|p| p.expose()).unwrap_or(""));
    }
    Ok(format!("{}#{hash:016x}", parsed.cache_key()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::creds::SecretString;

    #[test]
    fn forms_of_a_url_share_an_entry_but_credentials_do_not() {
        let a = entry_key("https://h/org/repo", None).unwrap();
        assert_eq!(a, entry_key("https://h/org/repo.git", None).unwrap());
        let with = |p: &str| Credentials {
            password: Some(SecretString::new(p)),
            ..Default::default()
        };
        let b = entry_key("https://h/org/repo", Some(&with("x"))).unwrap();
        let c = entry_key("https://h/org/repo", Some(&with("y"))).unwrap();
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert!(!b.contains('x'), "no secret in the key");
    }
}
