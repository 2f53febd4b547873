//! `jqPathExpressions`: Argo CD removes the paths a jq expression selects
//! before comparing, i.e. it runs `del(EXPR)` on both sides. The expressions
//! run in jaq, a jq implementation, compiled once per rule.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use serde_json::Value;

/// A jq path expression that could not be compiled or run.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JqError {
    /// The expression does not parse or compile.
    #[error("jqPathExpression {expr:?} is not valid jq: {message}")]
    Compile {
        /// The expression as written.
        expr: String,
        /// What is wrong.
        message: String,
    },
    /// The expression failed on an object (for example it indexes a string).
    #[error("jqPathExpression {expr:?} failed: {message}")]
    Run {
        /// The expression as written.
        expr: String,
        /// What failed.
        message: String,
    },
}

type Data = data::JustLut<Val>;

/// A compiled `del(EXPR)`.
#[derive(Clone)]
pub struct JqDelete {
    expr: String,
    /// Shared: compiled once, used by every clone of the rule.
    filter: std::sync::Arc<jaq_core::Filter<Data>>,
}

impl std::fmt::Debug for JqDelete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JqDelete").field(&self.expr).finish()
    }
}

impl JqDelete {
    /// Compiles `del(expr)`.
    pub fn new(expr: &str) -> Result<JqDelete, JqError> {
        let compile_err = |message: String| JqError::Compile {
            expr: expr.to_string(),
            message,
        };
        // jq treats a path through null as absent; jaq raises an error when
        // deleting one. An object on which the expression cannot select
        // anything (an absent parent, a string where an object was
        // expected) is left as it is, as with jq.
        let code = format!(". as $__berth_input | try del({expr}) catch $__berth_input");
        let program = File {
            code: code.as_str(),
            path: (),
        };
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, program)
            .map_err(|errs| compile_err(format!("{} parse error(s)", errs.len())))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                let names: Vec<String> = errs
                    .iter()
                    .flat_map(|(_, es)| es.iter().map(|(name, _)| name.to_string()))
                    .collect();
                compile_err(format!("undefined: {}", names.join(", ")))
            })?;
        Ok(JqDelete {
            expr: expr.to_string(),
            filter: std::sync::Arc::new(filter),
        })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// Returns `obj` without what the expression selects. An expression
    /// that selects nothing returns `obj` unchanged.
    pub fn apply(&self, obj: &Value) -> Result<Value, JqError> {
        let run_err = |message: String| JqError::Run {
            expr: self.expr.clone(),
            message,
        };
        let text = serde_json::to_vec(obj).map_err(|e| run_err(e.to_string()))?;
        let input = jaq_json::read::parse_single(&text).map_err(|e| run_err(e.to_string()))?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut out = self.filter.id.run((ctx, input));
        match out.next() {
            Some(Ok(v)) => serde_json::from_str(&v.to_string()).map_err(|e| run_err(e.to_string())),
            Some(Err(e)) => Err(run_err(format!("{e:?}"))),
            None => Ok(obj.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deletes_what_the_expression_selects() {
        let obj = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "a", "resources": {"limits": {"cpu": "1"}}},
            {"name": "sidecar", "image": "s", "resources": {"limits": {"cpu": "2"}}}
        ]}}}});
        let del = JqDelete::new(
            r#".spec.template.spec.containers[] | select(.name == "sidecar") | .resources"#,
        )
        .unwrap();
        let out = del.apply(&obj).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1],
            json!({"name": "sidecar", "image": "s"})
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"],
            "1"
        );
        let none = JqDelete::new(".metadata.labels.absent").unwrap();
        assert_eq!(none.apply(&obj).unwrap(), obj);
    }

    #[test]
    fn bad_expressions_are_named() {
        let err = JqDelete::new(".spec[").unwrap_err();
        assert!(err.to_string().contains(".spec["), "{err}");
        let err = JqDelete::new("nosuchfunction").unwrap_err();
        assert!(matches!(err, JqError::Compile { .. }), "{err}");
        let unchanged = json!({"a": "text"});
        assert_eq!(
            JqDelete::new(".a.b").unwrap().apply(&unchanged).unwrap(),
            unchanged
        );
    }
}
