//! Where environment overrides come from. Production reads the process environment; tests pass a
//! map so they never touch (or race on) the real one.

use std::collections::BTreeMap;

/// A source of `OUTPOST_*` overrides.
pub trait Environment {
    /// All variables whose name starts with `prefix`, in a stable order.
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        // vars_os: a variable that is not UTF-8 is skipped rather than panicking.
        let mut vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| k.starts_with(prefix))
            .collect();
        vars.sort();
        vars
    }
}

impl Environment for BTreeMap<String, String> {
    fn vars_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
