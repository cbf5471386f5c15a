//! The loading pipeline: defaults ← user file ← environment → typed config → validation.
//!
//! Values are merged as plain TOML tables (so defaults fill whatever the user leaves out), then
//! deserialized once. Locations are recovered afterwards from the user's document (toml_edit keeps
//! spans) and from the list of keys the environment set, so every problem points at its source.

use std::path::Path;

use crate::env::Environment;
use crate::error::{ConfigError, Location, Problem};
use crate::{ConfigFile, Validation};

/// Environment variables that override configuration keys start with this.
pub const ENV_PREFIX: &str = "OUTPOST_";

/// Reads and loads the config file at `path`.
pub fn load_file<T: ConfigFile>(path: &Path, env: &dyn Environment) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    load(&path.display().to_string(), &text, env, true)
}

/// Loads a config from `text`; `origin` names it in messages (usually the file path). Files the
/// config names are not looked at (see [`load_file`]).
pub fn load_str<T: ConfigFile>(
    origin: &str,
    text: &str,
    env: &dyn Environment,
) -> Result<T, ConfigError> {
    load(origin, text, env, false)
}

/// Keys whose values are secrets: a problem with one never shows its value.
fn is_secret(key: &KeyPath) -> bool {
    matches!(
        key.0.last(),
        Some(Segment::Key(k)) if ["token", "app_secret", "password"].contains(&k.as_str())
    )
}

fn load<T: ConfigFile>(
    origin: &str,
    text: &str,
    env: &dyn Environment,
    check_files: bool,
) -> Result<T, ConfigError> {
    let defaults: toml::Table = toml::from_str(T::DEFAULT_TOML).map_err(|e| {
        invalid(vec![Problem {
            location: Location::Default,
            key: String::new(),
            message: format!(
                "embedded {} defaults do not parse: {}",
                T::KIND,
                e.message()
            ),
        }])
    })?;
    let user: toml::Table = toml::from_str(text).map_err(|e| {
        let location = match e.span() {
            Some(span) => file_location(origin, text, span.start),
            None => file_location(origin, text, 0),
        };
        invalid(vec![Problem {
            location,
            key: String::new(),
            message: format!("not valid TOML: {}", e.message().trim_end()),
        }])
    })?;
    let mut locator = Locator {
        origin,
        text,
        doc: toml_edit::Document::parse(text).ok(),
        env_keys: Vec::new(),
    };

    let mut merged = defaults.clone();
    merge(&mut merged, user);
    let mut problems = Vec::new();
    for (var, raw) in env.vars_with_prefix(ENV_PREFIX) {
        let Some(path) = env_key_path(&var) else {
            problems.push(Problem {
                location: Location::Env { var: var.clone() },
                key: String::new(),
                message: "malformed override name: expected OUTPOST_<SECTION>__<KEY>".into(),
            });
            continue;
        };
        // A variable for a section this kind does not have belongs to another binary.
        if !defaults.contains_key(&path[0]) {
            continue;
        }
        match set_path(&mut merged, &defaults, &path, &raw) {
            Ok(()) => locator.env_keys.push((path.join("."), var)),
            Err(message) => problems.push(Problem {
                location: Location::Env { var },
                key: path.join("."),
                message,
            }),
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }

    let mut unknown: Vec<KeyPath> = Vec::new();
    let mut record_unknown = |p: serde_ignored::Path<'_>| unknown.push(KeyPath::from_ignored(&p));
    let ignored =
        serde_ignored::Deserializer::new(toml::Value::Table(merged.clone()), &mut record_unknown);
    let typed: Result<T, _> = serde_path_to_error::deserialize(ignored);
    for key in &unknown {
        problems.push(Problem {
            location: locator.locate(key),
            key: key.to_string(),
            message: unknown_key_message(&defaults, key),
        });
    }
    let config = match typed {
        Ok(config) => config,
        Err(err) => {
            let mut key = KeyPath::from_serde(err.path());
            let mut message = err.inner().message().trim_end().to_owned();
            if let Some((inner, explained)) = key
                .lookup(&merged)
                .and_then(|value| T::explain(&key.dotted(), value))
            {
                key = KeyPath::from_dotted(&format!("{}.{inner}", key.dotted()));
                message = explained;
            }
            let found = match key.lookup(&merged) {
                Some(value) if !value.is_table() => format!(" (found {value})"),
                _ => String::new(),
            };
            problems.push(Problem {
                location: locator.locate(&key),
                key: key.to_string(),
                message: format!("{message}{found}"),
            });
            return Err(invalid(problems));
        }
    };
    if !problems.is_empty() {
        return Err(invalid(problems));
    }

    let mut validation = Validation::default();
    config.validate(&mut validation);
    for (key, expected) in validation.problems {
        // `devices.2.id`: numeric segments are array indices.
        let path = KeyPath::from_dotted(&key);
        let found = match path.lookup(&merged) {
            Some(_) if is_secret(&path) => String::new(),
            Some(v) => format!(", found {v}"),
            None => String::new(),
        };
        problems.push(Problem {
            location: locator.locate(&path),
            key: path.to_string(),
            message: format!("expected {expected}{found}"),
        });
    }
    if check_files {
        for (key, file) in config.files() {
            if !file.is_file() {
                let path = KeyPath::from_dotted(key);
                problems.push(Problem {
                    location: locator.locate(&path),
                    key: path.to_string(),
                    message: format!("expected a readable file, found none at {}", file.display()),
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(invalid(problems))
    }
}

fn invalid(problems: Vec<Problem>) -> ConfigError {
    ConfigError::Invalid { problems }
}

/// Lays `over` onto `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `OUTPOST_SUPERVISION__MAX_RESTARTS` → `["supervision", "max_restarts"]`.
fn env_key_path(var: &str) -> Option<Vec<String>> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    path.iter().all(|s| !s.is_empty()).then_some(path)
}

/// Sets `path` in `table` to the value written in an environment variable. Where the default is a
/// string the raw text is the value; otherwise it is read as a TOML value (number, bool, array),
/// falling back to a string so that the type check reports it precisely.
fn set_path(
    table: &mut toml::Table,
    defaults: &toml::Table,
    path: &[String],
    raw: &str,
) -> Result<(), String> {
    let default = KeyPath::from_dotted(&path.join(".")).lookup(defaults);
    let value = match default {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_owned()),
        _ => parse_scalar(raw),
    };
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut current = table;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("`{segment}` is not a section, so it has no keys")),
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

fn parse_scalar(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn unknown_key_message(defaults: &toml::Table, key: &KeyPath) -> String {
    let parent = KeyPath(key.0[..key.0.len().saturating_sub(1)].to_vec());
    let known = if parent.0.is_empty() {
        Some(defaults)
    } else {
        match parent.lookup(defaults) {
            Some(toml::Value::Table(t)) => Some(t),
            _ => None,
        }
    };
    match known {
        Some(t) if !t.is_empty() => {
            let names: Vec<&str> = t.keys().map(String::as_str).collect();
            format!("unknown key; expected one of: {}", names.join(", "))
        }
        _ => "unknown key".to_owned(),
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A path to a value: `devices[2].rate`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// `devices.2.id`: the form [`Self::from_dotted`] reads.
    fn dotted(&self) -> String {
        self.0
            .iter()
            .map(|segment| match segment {
                Segment::Key(k) => k.clone(),
                Segment::Index(i) => i.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    fn from_dotted(dotted: &str) -> Self {
        KeyPath(
            dotted
                .split('.')
                .filter(|s| !s.is_empty())
                .map(|s| match s.parse::<usize>() {
                    Ok(index) => Segment::Index(index),
                    Err(_) => Segment::Key(s.to_owned()),
                })
                .collect(),
        )
    }

    fn from_serde(path: &serde_path_to_error::Path) -> Self {
        KeyPath(
            path.iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { .. }
                    | serde_path_to_error::Segment::Unknown => None,
                })
                .collect(),
        )
    }

    fn from_ignored(path: &serde_ignored::Path<'_>) -> Self {
        fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
            match path {
                serde_ignored::Path::Root => {}
                serde_ignored::Path::Seq { parent, index } => {
                    walk(parent, out);
                    out.push(Segment::Index(*index));
                }
                serde_ignored::Path::Map { parent, key } => {
                    walk(parent, out);
                    out.push(Segment::Key(key.clone()));
                }
                serde_ignored::Path::Some { parent }
                | serde_ignored::Path::NewtypeStruct { parent }
                | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
            }
        }
        let mut out = Vec::new();
        walk(path, &mut out);
        KeyPath(out)
    }

    fn lookup<'a>(&self, table: &'a toml::Table) -> Option<&'a toml::Value> {
        let (first, rest) = self.0.split_first()?;
        let Segment::Key(first) = first else {
            return None;
        };
        let mut value = table.get(first)?;
        for segment in rest {
            value = match (segment, value) {
                (Segment::Key(k), toml::Value::Table(t)) => t.get(k)?,
                (Segment::Index(i), toml::Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(value)
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(k) if i == 0 => write!(f, "{k}")?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Finds where a key was set: an environment variable, a place in the user's file, or the defaults.
struct Locator<'a> {
    origin: &'a str,
    text: &'a str,
    doc: Option<toml_edit::Document<&'a str>>,
    /// Dotted key paths set from the environment, with the variable that set them.
    env_keys: Vec<(String, String)>,
}

impl Locator<'_> {
    fn locate(&self, key: &KeyPath) -> Location {
        let dotted = key.to_string();
        if let Some((_, var)) = self
            .env_keys
            .iter()
            .find(|(k, _)| dotted == *k || dotted.starts_with(&format!("{k}.")))
        {
            return Location::Env { var: var.clone() };
        }
        match self.span_in_file(key) {
            Some(offset) => file_location(self.origin, self.text, offset),
            None => Location::Default,
        }
    }

    /// Byte offset of the deepest part of `key` the user's file spells out.
    fn span_in_file(&self, key: &KeyPath) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut item: &toml_edit::Item = doc.as_item();
        let mut best = None;
        for segment in &key.0 {
            let (offset, next) = match segment {
                Segment::Key(k) => {
                    let table = item.as_table_like()?;
                    let (k, v) = table.get_key_value(k)?;
                    (
                        k.span()
                            .map(|s| s.start)
                            .or_else(|| v.span().map(|s| s.start)),
                        v,
                    )
                }
                Segment::Index(i) => {
                    let next = item.get(*i)?;
                    (next.span().map(|s| s.start), next)
                }
            };
            if offset.is_some() {
                best = offset;
            }
            item = next;
        }
        best
    }
}

fn file_location(origin: &str, text: &str, offset: usize) -> Location {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Location::File {
        path: origin.to_owned(),
        line,
        column,
    }
}
