//! Sandboxed Lua for health scripts in Argo CD's format.
//!
//! A script sees the live object as the global `obj` and returns a table
//! `{status = ..., message = ...}`. The dialect is the one Argo CD runs:
//! Lua 5.1 with `goto`, which LuaJIT provides. The sandbox:
//!
//! - only `assert error ipairs next pairs pcall xpcall rawequal rawget rawset
//!   select setmetatable getmetatable tonumber tostring type unpack`, the
//!   `string`, `table` and `math` libraries and `os.time`/`os.date`/`os.clock`
//!   are reachable, and `require` of those four (as Argo CD's action
//!   scripts write `local os = require("os")`); no `io`, `os.execute`,
//!   `load*`, `dofile`, `debug`, `ffi`, coroutines or `string.dump`;
//! - the JIT is off so that the instruction hook fires on every path;
//! - the hook enforces a time limit and a memory limit. Once either trips,
//!   every later hook call and every return through `pcall`/`xpcall` raises
//!   again, so a script cannot swallow the limit, and the evaluation is
//!   reported as failed whatever the script returns afterwards;
//! - the allocator refuses what would pass the memory limit, so one call
//!   cannot allocate gigabytes between two hook calls; `pcall` catching the
//!   refusal does not help the script, as for the time limit;
//! - each evaluation runs in a fresh global environment, so a script that
//!   sets globals (`hs = {}` is common) never sees another run's values.
//!
//! One Lua state is kept per thread with its compiled scripts, because
//! creating a state and compiling costs more than running a typical script.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, VmState};
use serde_json::Value;

/// Limits for one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall time for one script run.
    pub timeout: Duration,
    /// Memory the Lua state may use, in bytes.
    pub memory: usize,
}

impl Default for Limits {
    /// One second, as the issue of record asks, and 64 MiB, far above what
    /// a health script over a large object needs.
    fn default() -> Limits {
        Limits {
            timeout: Duration::from_secs(1),
            memory: 64 << 20,
        }
    }
}

/// Why a script could not give a result.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LuaError {
    /// The script does not compile.
    #[error("{name}: {message}")]
    Compile {
        /// Where the script came from.
        name: String,
        /// Lua's message.
        message: String,
    },
    /// The script raised an error.
    #[error("{name}: {message}")]
    Runtime {
        /// Where the script came from.
        name: String,
        /// Lua's message.
        message: String,
    },
    /// The script ran longer than the limit.
    #[error("{name}: script exceeded the time limit of {limit:?}")]
    Timeout {
        /// Where the script came from.
        name: String,
        /// The limit.
        limit: Duration,
    },
    /// The script used more memory than the limit.
    #[error("{name}: script exceeded the memory limit of {limit} bytes")]
    Memory {
        /// Where the script came from.
        name: String,
        /// The limit.
        limit: usize,
    },
    /// The Lua state could not be set up (an internal error).
    #[error("cannot set up the Lua sandbox: {0}")]
    Setup(String),
}

/// What a script returned: its `status` and `message` fields as strings
/// (empty when absent). A script that returns nothing, nil or an empty
/// table gives no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptResult {
    /// The `status` field.
    pub status: String,
    /// The `message` field, empty when absent.
    pub message: String,
}

const TRIPPED: &str = "berth: script stopped by the sandbox";

/// LuaJIT's message for a refused allocation.
const OUT_OF_MEMORY: &str = "not enough memory";

/// How often, in VM instructions, the hook checks time and memory. Small
/// enough that doubling a string in a loop cannot reach more than a few
/// dozen megabytes between two checks.
const HOOK_EVERY: u32 = 100;

#[derive(Default)]
struct Guard {
    deadline: Cell<Option<Instant>>,
    memory_limit: Cell<usize>,
    tripped: Cell<Option<Trip>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Trip {
    Time,
    Memory,
}

struct Vm {
    lua: Lua,
    guard: Rc<Guard>,
    /// The table every evaluation's environment reads from.
    base: Table,
    scripts: HashMap<String, Function>,
}

thread_local! {
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// The most compiled scripts kept per thread; a controller has one per
/// customized kind, so this is only reached by churn in `argocd-cm`.
const MAX_SCRIPTS: usize = 512;

/// Runs `f` with this thread's Lua state, made when missing.
fn with_vm<T>(f: impl FnOnce(&mut Vm) -> Result<T, LuaError>) -> Result<T, LuaError> {
    VM.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Vm::new().map_err(|e| LuaError::Setup(e.to_string()))?);
        }
        let Some(vm) = slot.as_mut() else {
            return Err(LuaError::Setup("no Lua state".into()));
        };
        let result = f(vm);
        if vm.guard.tripped.get().is_some() {
            // A state whose script was stopped mid-way may hold half-built
            // garbage or a broken library table: start the next run afresh.
            *slot = None;
        }
        result
    })
}

/// Runs `source` (named `name` in messages) with `obj` as the global `obj`.
pub fn run(
    name: &str,
    source: &str,
    obj: &Value,
    limits: Limits,
) -> Result<Option<ScriptResult>, LuaError> {
    with_vm(|vm| vm.run(name, source, obj, limits))
}

/// Runs `source` (named `name` in messages) with `obj` as the global
/// `obj`, and returns what it returned as JSON: a table with the keys 1..n
/// is an array, another table an object (an empty table is `{}`), nil is
/// `null`. Resource actions use this.
pub fn eval(name: &str, source: &str, obj: &Value, limits: Limits) -> Result<Value, LuaError> {
    with_vm(|vm| {
        vm.call(name, source, obj, limits).and_then(|v| {
            // Bounded: shared subtables could otherwise expand into more
            // nodes than memory holds.
            let mut budget = MAX_NODES;
            from_lua(&v, 0, &mut budget).map_err(|message| LuaError::Runtime {
                name: name.to_string(),
                message,
            })
        })
    })
}

/// The most values a returned table may hold, nested ones counted each
/// time they appear.
const MAX_NODES: usize = 200_000;

/// A Lua value as JSON; `depth` bounds nesting (and so cycles), `budget`
/// the values converted.
fn from_lua(v: &mlua::Value, depth: usize, budget: &mut usize) -> Result<Value, String> {
    if depth > 64 {
        return Err("the returned table nests more than 64 levels (a cycle?)".into());
    }
    if *budget == 0 {
        return Err(format!(
            "the returned table holds more than {MAX_NODES} values"
        ));
    }
    *budget -= 1;
    Ok(match v {
        mlua::Value::Nil => Value::Null,
        mlua::Value::Boolean(b) => Value::Bool(*b),
        mlua::Value::Integer(i) => Value::from(*i),
        mlua::Value::Number(n) => {
            // Whole numbers are integers again (Lua 5.1 has only floats).
            if n.fract() == 0.0 && n.abs() < 9.2e18 {
                Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
        }
        mlua::Value::String(s) => Value::String(s.to_string_lossy()),
        mlua::Value::Table(t) => {
            let len = t.raw_len();
            let mut count = 0;
            let mut entries = Vec::new();
            for pair in t.clone().pairs::<mlua::Value, mlua::Value>() {
                let (k, v) = pair.map_err(|e| e.to_string())?;
                count += 1;
                entries.push((k, v));
            }
            if len > 0 && count == len {
                let mut items = vec![Value::Null; len];
                for (k, v) in entries {
                    let i = match k {
                        mlua::Value::Integer(i) => i as usize,
                        mlua::Value::Number(n) => n as usize,
                        _ => return Err("a table mixes list items and keys".into()),
                    };
                    if let Some(slot) = items.get_mut(i.wrapping_sub(1)) {
                        *slot = from_lua(&v, depth + 1, budget)?;
                    }
                }
                Value::Array(items)
            } else {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    let key = match k {
                        mlua::Value::String(s) => s.to_string_lossy(),
                        mlua::Value::Integer(i) => i.to_string(),
                        mlua::Value::Number(n) => n.to_string(),
                        other => return Err(format!("a table key is a {}", other.type_name())),
                    };
                    map.insert(key, from_lua(&v, depth + 1, budget)?);
                }
                Value::Object(map)
            }
        }
        other => return Err(format!("a script returned a {}", other.type_name())),
    })
}

impl Vm {
    fn new() -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::OS | StdLib::JIT,
            LuaOptions::default(),
        )?;
        let globals = lua.globals();
        // Hooks do not fire in compiled traces.
        lua.load("jit.off(); jit.flush()").exec()?;

        let guard = Rc::new(Guard::default());
        let hook_guard = Rc::clone(&guard);
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |lua, _| {
                if hook_guard.tripped.get().is_some() {
                    return Err(mlua::Error::runtime(TRIPPED));
                }
                if hook_guard
                    .deadline
                    .get()
                    .is_some_and(|d| Instant::now() >= d)
                {
                    hook_guard.tripped.set(Some(Trip::Time));
                    return Err(mlua::Error::runtime(TRIPPED));
                }
                let limit = hook_guard.memory_limit.get();
                if limit > 0 && lua.used_memory() > limit {
                    // Count only what is still reachable.
                    lua.gc_collect()?;
                    if lua.used_memory() > limit {
                        hook_guard.tripped.set(Some(Trip::Memory));
                        return Err(mlua::Error::runtime(TRIPPED));
                    }
                }
                Ok(VmState::Continue)
            },
        )?;

        let tripped_guard = Rc::clone(&guard);
        // Called with what pcall returned: a refused allocation is caught by
        // pcall like any error, so it is recognised here and made sticky.
        let tripped = lua.create_function(move |_, (ok, err): (bool, mlua::Value)| {
            if !ok
                && let mlua::Value::String(e) = err
                && e.as_bytes().as_ref() == OUT_OF_MEMORY.as_bytes()
            {
                tripped_guard.tripped.set(Some(Trip::Memory));
            }
            Ok(tripped_guard.tripped.get().is_some())
        })?;
        // Built from a chunk so that the raw functions stay in upvalues that
        // no script can reach.
        let base: Table = lua
            .load(SANDBOX)
            .set_name("=berth-sandbox")
            .call((tripped, TRIPPED))?;
        for name in [
            "io",
            "os",
            "require",
            "package",
            "module",
            "load",
            "loadstring",
            "loadfile",
            "dofile",
            "debug",
            "jit",
            "ffi",
            "coroutine",
            "collectgarbage",
            "getfenv",
            "setfenv",
            "newproxy",
            "gcinfo",
            "print",
        ] {
            globals.raw_set(name, mlua::Nil)?;
        }
        Ok(Vm {
            lua,
            guard,
            base,
            scripts: HashMap::new(),
        })
    }

    fn run(
        &mut self,
        name: &str,
        source: &str,
        obj: &Value,
        limits: Limits,
    ) -> Result<Option<ScriptResult>, LuaError> {
        let value = self.call(name, source, obj, limits)?;
        health_result(name, value)
    }

    /// Runs `source` with `obj` as the global `obj` and returns what it
    /// returned, within the limits.
    fn call(
        &mut self,
        name: &str,
        source: &str,
        obj: &Value,
        limits: Limits,
    ) -> Result<mlua::Value, LuaError> {
        let runtime = |e: mlua::Error| LuaError::Runtime {
            name: name.to_string(),
            message: lua_message(&e),
        };
        let function = match self.scripts.get(source) {
            Some(f) => f.clone(),
            None => {
                let f = self
                    .lua
                    .load(source)
                    .set_name(format!("={name}"))
                    .set_mode(mlua::chunk::ChunkMode::Text)
                    .into_function()
                    .map_err(|e| LuaError::Compile {
                        name: name.to_string(),
                        message: lua_message(&e),
                    })?;
                if self.scripts.len() >= MAX_SCRIPTS {
                    self.scripts.clear();
                }
                self.scripts.insert(source.to_string(), f.clone());
                f
            }
        };
        let env = self.lua.create_table().map_err(runtime)?;
        let meta = self.lua.create_table().map_err(runtime)?;
        meta.raw_set("__index", self.base.clone())
            .map_err(runtime)?;
        meta.raw_set("__metatable", false).map_err(runtime)?;
        env.set_metatable(Some(meta)).map_err(runtime)?;
        env.raw_set("_G", env.clone()).map_err(runtime)?;
        env.raw_set("obj", to_lua(&self.lua, obj).map_err(runtime)?)
            .map_err(runtime)?;
        function.set_environment(env).map_err(runtime)?;

        self.guard.tripped.set(None);
        self.guard.memory_limit.set(limits.memory);
        // The allocator refuses what would pass the limit, so one call
        // such as `string.rep('x', 1e10)` cannot allocate gigabytes before
        // the hook looks; the hook's check covers states without it.
        let _ = self.lua.set_memory_limit(limits.memory);
        self.guard
            .deadline
            .set(Some(Instant::now() + limits.timeout));
        let outcome = function.call::<mlua::Value>(());
        self.guard.deadline.set(None);
        let _ = self.lua.set_memory_limit(0);
        if matches!(&outcome, Err(e) if is_out_of_memory(e)) {
            self.guard.tripped.set(Some(Trip::Memory));
        }
        match self.guard.tripped.get() {
            Some(Trip::Time) => {
                return Err(LuaError::Timeout {
                    name: name.to_string(),
                    limit: limits.timeout,
                });
            }
            Some(Trip::Memory) => {
                return Err(LuaError::Memory {
                    name: name.to_string(),
                    limit: limits.memory,
                });
            }
            None => {}
        }
        outcome.map_err(runtime)
    }
}

/// A health script's answer: `status` and `message`, none for nil or `{}`.
fn health_result(name: &str, value: mlua::Value) -> Result<Option<ScriptResult>, LuaError> {
    {
        let t = match value {
            mlua::Value::Nil => return Ok(None),
            mlua::Value::Table(t) if t.is_empty() => return Ok(None),
            mlua::Value::Table(t) => t,
            // Argo CD's words for a script that returns something else.
            other => {
                return Err(LuaError::Runtime {
                    name: name.to_string(),
                    message: format!(
                        "expect table output from Lua script, not {}",
                        match other {
                            // Lua 5.1 has one number type.
                            mlua::Value::Integer(_) | mlua::Value::Number(_) => "number",
                            other => other.type_name(),
                        }
                    ),
                });
            }
        };
        let field = |key: &str| -> String {
            match t.raw_get::<mlua::Value>(key) {
                Ok(mlua::Value::String(s)) => s.to_string_lossy(),
                Ok(mlua::Value::Integer(i)) => i.to_string(),
                Ok(mlua::Value::Number(n)) => n.to_string(),
                _ => String::new(),
            }
        };
        // A table without a status (only a message, say) is kept: it is an
        // invalid status, not "no health".
        let status = field("status");
        Ok(Some(ScriptResult {
            status,
            message: field("message"),
        }))
    }
}

/// Sets up the sandbox's shared base table from the state's libraries.
/// Library tables are exposed read-only so that a script cannot change what
/// the next script sees.
const SANDBOX: &str = r#"
local tripped, TRIPPED = ...
local raw_pcall, raw_xpcall, error, select = pcall, xpcall, error, select
string.dump = nil
getmetatable("").__metatable = false
local function pass(ok, ...)
  if tripped(ok, ...) then error(TRIPPED, 0) end
  return ok, ...
end
local function readonly(t, name)
  return setmetatable({}, {
    __index = t,
    __newindex = function() error("attempt to modify the read-only library " .. name, 2) end,
    __metatable = false,
  })
end
local os_safe = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime }
local modules = {
  os = readonly(os_safe, "os"), string = readonly(string, "string"),
  table = readonly(table, "table"), math = readonly(math, "math"),
}
return {
  require = function(name)
    local m = modules[name]
    if m == nil then
      error("module '" .. tostring(name) .. "' not found: the sandbox offers os, string, table and math", 2)
    end
    return m
  end,
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  pcall = function(f, ...) return pass(raw_pcall(f, ...)) end,
  xpcall = function(f, h) return pass(raw_xpcall(f, h)) end,
  rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
  setmetatable = setmetatable, getmetatable = getmetatable,
  tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
  print = function() end,
  _VERSION = _VERSION,
  string = modules.string,
  table = modules.table,
  math = modules.math,
  os = modules.os,
}
"#;

fn is_out_of_memory(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::RuntimeError(m) => m.contains(OUT_OF_MEMORY),
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            is_out_of_memory(cause)
        }
        _ => false,
    }
}

/// Lua's own message, without mlua's wrapping and traceback.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => {
            m.lines().next().unwrap_or_default().to_string()
        }
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        mlua::Error::WithContext { cause, .. } => lua_message(cause),
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Converts JSON to Lua as Argo CD does: objects and arrays become tables
/// (arrays from index 1), null becomes nil.
fn to_lua(lua: &Lua, v: &Value) -> mlua::Result<mlua::Value> {
    Ok(match v {
        Value::Null => mlua::Value::Nil,
        Value::Bool(b) => mlua::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            // Whole numbers stay integers so that `tostring` prints no `.0`.
            Some(i) if i.unsigned_abs() < (1u64 << 53) => mlua::Value::Number(i as f64),
            _ => mlua::Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => mlua::Value::String(lua.create_string(s)?),
        Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item)?)?;
            }
            mlua::Value::Table(t)
        }
        Value::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                if !item.is_null() {
                    t.raw_set(k.as_str(), to_lua(lua, item)?)?;
                }
            }
            mlua::Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quick() -> Limits {
        Limits {
            timeout: Duration::from_millis(200),
            memory: 32 << 20,
        }
    }

    fn eval(src: &str) -> Result<Option<ScriptResult>, LuaError> {
        run("test.lua", src, &json!({"spec": {"replicas": 2}}), quick())
    }

    #[test]
    fn returns_status_and_message() {
        let r =
            eval(r#"return {status = "Healthy", message = "n=" .. tostring(obj.spec.replicas)}"#);
        assert_eq!(
            r,
            Ok(Some(ScriptResult {
                status: "Healthy".into(),
                message: "n=2".into()
            }))
        );
    }

    #[test]
    fn goto_and_getn_work() {
        let r = eval(
            r#"local t = {1, 2, 3}
               for i = 1, 10 do if i == 2 then goto done end end
               ::done::
               return {status = "Healthy", message = tostring(table.getn(t))}"#,
        );
        assert_eq!(r.map(|x| x.map(|x| x.message)), Ok(Some("3".into())));
    }

    #[test]
    fn empty_or_nil_result_is_no_status() {
        assert_eq!(eval("return nil"), Ok(None));
        assert_eq!(eval("return {}"), Ok(None));
        assert_eq!(eval("local x = 1"), Ok(None));
        assert_eq!(
            eval("return {message = 'no status'}"),
            Ok(Some(ScriptResult {
                status: String::new(),
                message: "no status".into()
            }))
        );
        match eval("return 1") {
            Err(LuaError::Runtime { message, .. }) => {
                assert_eq!(message, "expect table output from Lua script, not number")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn globals_do_not_leak_between_runs() {
        assert!(eval(r#"hs = {message = "old"}; return {status = "Healthy"}"#).is_ok());
        let r = eval(
            r#"if hs == nil then return {status = "Healthy", message = "clean"} end return {status = "Degraded"}"#,
        );
        assert_eq!(r.map(|x| x.map(|x| x.message)), Ok(Some("clean".into())));
    }

    #[test]
    fn dangerous_functions_are_absent() {
        for src in [
            "return io.open('/etc/passwd')",
            "return os.execute('true')",
            "return require('io')",
            "return require('os').execute('true')",
            "return loadstring('return 1')()",
            "return load('return 1')()",
            "return dofile('/etc/passwd')",
            "return string.dump(function() end)",
            "return debug.getinfo(1)",
            "return ffi.C",
            "return coroutine.create(function() end)",
            "return getfenv(0)",
        ] {
            match eval(src) {
                Err(LuaError::Runtime { .. }) => {}
                other => panic!("{src}: expected an error, got {other:?}"),
            }
        }
        // os.time and os.date are allowed.
        assert!(matches!(
            eval("return {status = 'Healthy', message = os.date('%Y', os.time())}"),
            Ok(Some(_))
        ));
    }

    #[test]
    fn bytecode_is_refused() {
        // A LuaJIT bytecode header: precompiled chunks could break the VM's
        // invariants, so only source text is loaded.
        let bytecode = "\x1bLJ\x02\x0a\x00";
        assert!(matches!(
            run("bytecode", bytecode, &json!({}), quick()),
            Err(LuaError::Compile { .. })
        ));
        // Nor can a script build a chunk: no load, loadstring or string.dump.
        assert!(matches!(
            eval("return load(string.dump(function() return 1 end))"),
            Err(LuaError::Runtime { .. })
        ));
    }

    #[test]
    fn infinite_loop_times_out() {
        assert!(matches!(
            eval("while true do end"),
            Err(LuaError::Timeout { .. })
        ));
    }

    #[test]
    fn pcall_cannot_swallow_the_time_limit() {
        let src = r#"
            while true do
              pcall(function() while true do end end)
              xpcall(function() while true do end end, function(e) return e end)
            end"#;
        assert!(matches!(eval(src), Err(LuaError::Timeout { .. })));
        // And a script that catches the limit and returns a status still fails.
        let src = r#"
            local ok = pcall(function() while true do end end)
            return {status = "Healthy"}"#;
        assert!(matches!(eval(src), Err(LuaError::Timeout { .. })));
    }

    #[test]
    fn memory_bombs_are_stopped() {
        for src in [
            "local t = {} for i = 1, 1e9 do t[i] = {i} end",
            "local s = 'x' while true do s = s .. s end",
            "local s = string.rep('x', 1e9) return {status = 'Healthy', message = s}",
            "local ok = pcall(string.rep, 'x', 1e9) return {status = 'Healthy'}",
            "local s = ('x'):rep(2e9) return {status = 'Healthy', message = s}",
            "local t = {} for i = 1, 1e9 do t[i] = string.rep('y', 1000) .. i end",
        ] {
            match eval(src) {
                Err(LuaError::Memory { .. }) => {}
                other => panic!("{src}: expected the memory limit, got {other:?}"),
            }
        }
        // The next script runs normally.
        assert!(matches!(eval("return {status = 'Healthy'}"), Ok(Some(_))));
    }

    #[test]
    fn libraries_are_read_only() {
        assert!(matches!(
            eval("string.upper = nil"),
            Err(LuaError::Runtime { .. })
        ));
        assert!(matches!(
            eval("getmetatable('').__index.upper = nil"),
            Err(LuaError::Runtime { .. })
        ));
        assert!(matches!(
            eval("getmetatable(_G).__index.pairs = nil"),
            Err(LuaError::Runtime { .. })
        ));
        assert!(matches!(
            eval("return {status = string.upper('healthy')}"),
            Ok(Some(_))
        ));
    }

    #[test]
    fn errors_carry_the_script_name_and_line() {
        match eval("local x = nil\nreturn x.y") {
            Err(LuaError::Runtime { name, message }) => {
                assert_eq!(name, "test.lua");
                assert!(message.contains(":2:"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(eval("return {"), Err(LuaError::Compile { .. })));
    }

    #[test]
    fn whole_numbers_print_without_a_fraction() {
        let r = run(
            "t",
            "return {status = 'Healthy', message = tostring(obj.n) .. ' ' .. tostring(obj.f)}",
            &json!({"n": 3, "f": 1.5}),
            quick(),
        );
        assert_eq!(r.map(|x| x.map(|x| x.message)), Ok(Some("3 1.5".into())));
    }
}
