//! AppProject sync windows, as Argo CD evaluates them: each window is a
//! cron `schedule` (five fields, or `@hourly`, `@daily`, ...) in its
//! `timeZone` (default UTC) that opens it for `duration` (Go's form:
//! `1h30m`); it applies to an application when one of its `applications`,
//! `namespaces` or `clusters` globs matches (all of the given lists with
//! `andOperator`). An active `deny` window blocks syncs; when `allow`
//! windows apply to the app, a sync needs one of them active; deny beats
//! allow. `manualSync: true` on the windows that block lets manual syncs
//! through. Evaluated at the controller's admission point (automated and
//! requested syncs alike) and by the API server before it writes an
//! operation.

use jiff::{Timestamp, ToSpan, Zoned};
use serde_json::{Value, json};

use crate::project::glob;

/// What the windows allow now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// An automated sync may run.
    pub automated: bool,
    /// A manual (requested) sync may run.
    pub manual: bool,
    /// Why not, for people; empty when both may.
    pub reason: String,
    /// The windows that apply to the app, each with whether it is active,
    /// for the status.
    pub windows: Vec<Value>,
}

impl Verdict {
    /// The state as `status.berth.syncWindows` shows it (extension).
    pub fn to_status(&self) -> Value {
        json!({
            "syncAllowed": self.automated,
            "manualSyncAllowed": self.manual,
            "message": self.reason,
            "windows": self.windows,
        })
    }
}

/// One five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    any_day: bool,
    any_weekday: bool,
}

fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; max as usize + 1];
    let number = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + min);
        }
        s.parse::<u32>()
            .map_err(|_| format!("{s:?} is not a number"))
    };
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step {s:?}"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a)?, number(b)?)
        } else {
            let n = number(range)?;
            (n, if part.contains('/') { max } else { n })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{part:?} is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, text == "*" || text == "?"))
}

impl Cron {
    /// Parses `m h dom mon dow` or a descriptor (`@yearly`, `@annually`,
    /// `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`).
    pub fn parse(text: &str) -> Result<Cron, String> {
        let text = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t => t,
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [m, h, dom, mon, dow] = parts[..] else {
            return Err(format!(
                "{text:?}: expected five fields (minute hour day-of-month month day-of-week)"
            ));
        };
        let months = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        let days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let (minutes, _) = field(m, 0, 59, &[]).map_err(|e| format!("minute {e}"))?;
        let (hours, _) = field(h, 0, 23, &[]).map_err(|e| format!("hour {e}"))?;
        let (days_set, any_day) = field(dom, 1, 31, &[]).map_err(|e| format!("day {e}"))?;
        let (months_set, _) = field(mon, 1, 12, &months).map_err(|e| format!("month {e}"))?;
        let (mut weekdays, any_weekday) =
            field(dow, 0, 7, &days).map_err(|e| format!("day of week {e}"))?;
        // 7 is Sunday too.
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Cron {
            minutes,
            hours,
            days: days_set,
            months: months_set,
            weekdays,
            any_day,
            any_weekday,
        })
    }

    /// Whether the schedule fires at the minute of `t`.
    pub fn fires_at(&self, t: &Zoned) -> bool {
        let day = self.days[t.day() as usize];
        let weekday = self.weekdays[t.weekday().to_sunday_zero_offset() as usize];
        // Standard cron: with both day fields restricted, either matches.
        let day_ok = match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (true, false) => weekday,
            (false, true) => day,
            (false, false) => day || weekday,
        };
        self.minutes[t.minute() as usize]
            && self.hours[t.hour() as usize]
            && self.months[t.month() as usize]
            && day_ok
    }
}

/// Parses Go's duration form (`1h`, `30m`, `1h30m`, `90s`) into minutes.
pub fn duration_minutes(text: &str) -> Result<i64, String> {
    let mut total_secs: i64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected a duration like 1h30m"))?;
        number.clear();
        total_secs += match c {
            'h' => n * 3600,
            'm' => n * 60,
            's' => n,
            _ => return Err(format!("{text:?}: unit {c:?}; use h, m or s")),
        };
    }
    if !number.is_empty() || total_secs <= 0 {
        return Err(format!("{text:?}: expected a duration like 1h30m"));
    }
    Ok((total_secs + 59) / 60)
}

/// Whether `window` is open at `now`: its schedule fired within the last
/// `duration`.
pub fn active(window: &Value, now: Timestamp) -> Result<bool, String> {
    let text = |k: &str| window.get(k).and_then(Value::as_str).unwrap_or_default();
    let cron = Cron::parse(text("schedule"))?;
    let minutes = duration_minutes(text("duration"))?;
    let zone = match text("timeZone") {
        "" => jiff::tz::TimeZone::UTC,
        name => jiff::tz::TimeZone::get(name).map_err(|e| format!("timeZone {name:?}: {e}"))?,
    };
    let now = now.to_zoned(zone);
    let mut t = now
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .map_err(|e| e.to_string())?;
    for _ in 0..minutes {
        if cron.fires_at(&t) {
            return Ok(true);
        }
        t = t.checked_sub(1.minute()).map_err(|e| e.to_string())?;
    }
    Ok(false)
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Whether `window` applies to the app named `app` deploying to
/// `namespace` on cluster `server` (or `cluster_name`).
fn applies(window: &Value, app: &str, namespace: &str, server: &str, cluster_name: &str) -> bool {
    let apps = strings(window.get("applications"));
    let namespaces = strings(window.get("namespaces"));
    let clusters = strings(window.get("clusters"));
    let tests = [
        (!apps.is_empty()).then(|| apps.iter().any(|p| glob(p, app))),
        (!namespaces.is_empty()).then(|| namespaces.iter().any(|p| glob(p, namespace))),
        (!clusters.is_empty()).then(|| {
            clusters
                .iter()
                .any(|p| glob(p, server) || glob(p, cluster_name))
        }),
    ];
    let given: Vec<bool> = tests.into_iter().flatten().collect();
    if given.is_empty() {
        return false;
    }
    if window.get("andOperator").and_then(Value::as_bool) == Some(true) {
        given.iter().all(|g| *g)
    } else {
        given.iter().any(|g| *g)
    }
}

/// The verdict of the windows of project `project_name` (its `spec`) on
/// Application `app` at `now`. A window that cannot be read blocks (it may
/// have been meant to), and the reason names it.
pub fn evaluate(app: &Value, project_name: &str, spec: &Value, now: Timestamp) -> Verdict {
    let text = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let name = text("/metadata/name");
    let namespace = text("/spec/destination/namespace");
    let (server, cluster_name) = match (
        text("/spec/destination/server"),
        text("/spec/destination/name"),
    ) {
        ("", "in-cluster") => (crate::project::IN_CLUSTER_SERVER, "in-cluster"),
        (crate::project::IN_CLUSTER_SERVER, "") => {
            (crate::project::IN_CLUSTER_SERVER, "in-cluster")
        }
        other => other,
    };
    let mut shown = Vec::new();
    let (mut deny_active, mut deny_manual) = (Vec::new(), true);
    let (mut allow_any, mut allow_active, mut allow_manual) = (false, false, true);
    let mut broken = Vec::new();
    let windows = spec
        .get("syncWindows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, w) in windows.iter().enumerate() {
        if !applies(w, name, namespace, server, cluster_name) {
            continue;
        }
        let kind = w.get("kind").and_then(Value::as_str).unwrap_or_default();
        let manual = w
            .get("manualSync")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let describe = format!(
            "{kind} {:?} for {}",
            w.get("schedule")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            w.get("duration")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
        let is_active = match active(w, now) {
            Ok(a) => a,
            Err(e) => {
                broken.push(format!("syncWindows[{i}]: {e}"));
                true
            }
        };
        // The window as the project declares it, and whether it is open.
        let mut entry = w.clone();
        if let Some(m) = entry.as_object_mut() {
            m.insert("manualSync".into(), Value::Bool(manual));
            m.insert("active".into(), Value::Bool(is_active));
        }
        shown.push(entry);
        match kind {
            "deny" => {
                if is_active {
                    deny_active.push(describe);
                    deny_manual &= manual;
                }
            }
            "allow" => {
                allow_any = true;
                if is_active {
                    allow_active = true;
                } else {
                    allow_manual &= manual;
                }
            }
            other => broken.push(format!(
                "syncWindows[{i}].kind {other:?}: use allow or deny"
            )),
        }
    }
    if !broken.is_empty() {
        return Verdict {
            automated: false,
            manual: false,
            reason: format!("AppProject {project_name}: {}", broken.join("; ")),
            windows: shown,
        };
    }
    let mut reasons = Vec::new();
    let mut automated = true;
    let mut manual = true;
    if !deny_active.is_empty() {
        automated = false;
        manual &= deny_manual;
        reasons.push(format!("deny window active ({})", deny_active.join(", ")));
    }
    if allow_any && !allow_active {
        automated = false;
        manual &= allow_manual;
        reasons.push("no allow window active".to_string());
    }
    Verdict {
        automated,
        manual,
        reason: if reasons.is_empty() {
            String::new()
        } else {
            format!(
                "sync blocked by the sync windows of project {project_name:?}: {}",
                reasons.join("; ")
            )
        },
        windows: shown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn cron_fields() {
        let c = Cron::parse("*/15 9-17 * * mon-fri").unwrap();
        let z = |t: &str| at(t).to_zoned(jiff::tz::TimeZone::UTC);
        assert!(c.fires_at(&z("2026-11-30T09:15:00Z")), "a Monday");
        assert!(!c.fires_at(&z("2026-11-30T09:16:00Z")));
        assert!(!c.fires_at(&z("2026-11-29T09:15:00Z")), "a Sunday");
        assert!(
            Cron::parse("@daily")
                .unwrap()
                .fires_at(&z("2026-11-29T00:00:00Z"))
        );
        assert!(
            Cron::parse("0 0 * * 7")
                .unwrap()
                .fires_at(&z("2026-11-29T00:00:00Z")),
            "7 is Sunday"
        );
        assert!(Cron::parse("61 * * * *").is_err());
        assert!(Cron::parse("* * *").is_err());
        assert_eq!(duration_minutes("1h30m").unwrap(), 90);
        assert_eq!(duration_minutes("90s").unwrap(), 2);
        assert!(duration_minutes("1d").is_err());
    }

    #[test]
    fn windows_deny_beats_allow_and_manual_sync_passes() {
        let app = json!({"metadata": {"name": "web-prod"}, "spec": {"destination": {"server": "https://kubernetes.default.svc", "namespace": "prod"}}});
        let project = |windows: Value| json!({"syncWindows": windows});
        let now = at("2026-11-30T10:30:00Z");
        // Nothing applies: everything allowed.
        let v = evaluate(
            &app,
            "p",
            &project(
                json!([{"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["other"]}]),
            ),
            now,
        );
        assert!(v.automated && v.manual, "{v:?}");
        // An active deny window with manualSync.
        let deny = json!({"kind": "deny", "schedule": "0 10 * * *", "duration": "1h", "namespaces": ["prod"], "manualSync": true});
        let v = evaluate(&app, "p", &project(json!([deny])), now);
        assert!(!v.automated && v.manual, "{v:?}");
        assert!(v.reason.contains("deny window active"));
        // Past its hour it is closed.
        let v = evaluate(
            &app,
            "p",
            &project(json!([deny])),
            at("2026-11-30T11:00:00Z"),
        );
        assert!(v.automated, "{v:?}");
        // Deny beats an active allow; without manualSync manual is blocked.
        let allow =
            json!({"kind": "allow", "schedule": "* * * * *", "duration": "1h", "clusters": ["*"]});
        let strict = json!({"kind": "deny", "schedule": "0 10 * * *", "duration": "1h", "applications": ["web-*"]});
        let v = evaluate(&app, "p", &project(json!([allow, strict])), now);
        assert!(!v.automated && !v.manual, "{v:?}");
        // An allow window not active blocks; in its time zone it is.
        let evening = json!({"kind": "allow", "schedule": "0 18 * * *", "duration": "2h", "namespaces": ["prod"], "timeZone": "Europe/Berlin"});
        assert!(!evaluate(&app, "p", &project(json!([evening])), now).automated);
        assert!(
            evaluate(
                &app,
                "p",
                &project(json!([evening])),
                at("2026-11-30T17:30:00Z")
            )
            .automated,
            "18:30 in Berlin"
        );
        // andOperator: every given list must match.
        let both = json!({"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["web-*"], "namespaces": ["staging"], "andOperator": true});
        assert!(evaluate(&app, "p", &project(json!([both])), now).automated);
        // A window that cannot be read blocks, naming it.
        let v = evaluate(
            &app,
            "p",
            &project(
                json!([{"kind": "deny", "schedule": "every day", "duration": "1h", "namespaces": ["*"]}]),
            ),
            now,
        );
        assert!(
            !v.automated && !v.manual && v.reason.contains("syncWindows[0]"),
            "{v:?}"
        );
    }
}
