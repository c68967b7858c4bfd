//! Loading policy files and evaluating them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::decision::{AccessInput, Decision, Mask};
use crate::error::{PolicyError, Result};

/// The outcome of one `test_` rule.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TestOutcome {
    /// `data.<package>.<rule>`.
    pub name: String,
    pub file: String,
    pub passed: bool,
    /// Why it failed: `false`/undefined, or the evaluation error.
    pub detail: Option<String>,
}

/// One loaded file: its path (as shown in messages), package and text.
#[derive(Debug, Clone)]
struct PolicyFile {
    path: String,
    package: String,
    text: String,
}

/// The policies of a mesh: the global ones and each domain's.
#[derive(Debug)]
pub struct PolicySet {
    global: Mutex<Evaluator>,
    domains: BTreeMap<String, Mutex<Evaluator>>,
    files: Vec<PolicyFile>,
    /// Decisions by input, while no policy calls a builtin whose answer
    /// changes between calls (see [`is_deterministic`]): a decision is
    /// then a function of the policies and the input alone.
    decisions: Option<Mutex<HashMap<String, Decision>>>,
}

/// Most decisions kept per policy set; the map starts over past it.
const DECISIONS_KEPT: usize = 4096;

/// Builtins whose answer is not a function of their arguments.
const NONDETERMINISTIC: [&str; 6] = [
    "time.now_ns",
    "rand.intn",
    "http.send",
    "uuid.rfc4122",
    "opa.runtime",
    "net.lookup_ip_addr",
];

/// Whether every policy text decides the same input the same way each time.
fn is_deterministic<'a>(texts: impl IntoIterator<Item = &'a str>) -> bool {
    texts
        .into_iter()
        .all(|t| NONDETERMINISTIC.iter().all(|b| !t.contains(b)))
}

/// One compiled policy engine, and the rule paths it was found not to
/// define (asked for again, they are undefined without an evaluation).
#[derive(Debug)]
pub(crate) struct Evaluator {
    engine: regorus::Engine,
    missing: std::collections::HashSet<String>,
}

impl Evaluator {
    fn new(engine: regorus::Engine) -> Mutex<Self> {
        Mutex::new(Evaluator {
            engine,
            missing: Default::default(),
        })
    }

    /// The value of `path` for the input set: a rule path is evaluated
    /// directly (no query to parse and schedule, several times cheaper);
    /// anything else, or a path no rule defines, as a query, which tells
    /// an undefined value from a failure.
    fn value(&mut self, path: &str) -> Result<Option<regorus::Value>> {
        let mut not_a_rule = true;
        if !self.missing.contains(path) {
            match self.engine.eval_rule(path.to_string()) {
                Ok(v) => return Ok(Some(v).filter(|v| *v != regorus::Value::Undefined)),
                Err(e) => not_a_rule = e.to_string().contains("not a valid rule path"),
            }
        }
        let results = self
            .engine
            .eval_query(path.to_string(), false)
            .map_err(|err| PolicyError::Eval(err.to_string()))?;
        let v = results
            .result
            .into_iter()
            .next()
            .and_then(|r| r.expressions.into_iter().next())
            .map(|x| x.value)
            .filter(|v| *v != regorus::Value::Undefined);
        if v.is_none() && not_a_rule {
            self.missing.insert(path.to_string());
        }
        Ok(v)
    }
}

/// `.rego` files directly in `dir`, sorted; none when it does not exist.
fn rego_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PolicyError::Read {
                path: dir.display().to_string(),
                source,
            });
        }
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rego"))
        .collect();
    out.sort();
    Ok(out)
}

fn read(path: &Path, root: &Path) -> Result<(String, String)> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let shown = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    Ok((shown, text))
}

/// Turns a regorus parse error (`--> file:line:col` then a caret and the
/// message) into a located error.
fn syntax_error(file: &str, e: &dyn std::fmt::Display) -> PolicyError {
    let text = e.to_string();
    let mut line = 1;
    let mut col = 1;
    if let Some(at) = text.split("--> ").nth(1) {
        let loc = at.lines().next().unwrap_or_default();
        let mut parts = loc.rsplitn(3, ':');
        col = parts
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(1);
        line = parts
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(1);
    }
    let message = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error:"))
        .map(|l| {
            l.trim_start()
                .trim_start_matches("error:")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| text.trim().to_string());
    PolicyError::Syntax {
        file: file.to_string(),
        line,
        col,
        message,
    }
}

fn package_line(text: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with("package "))
        .map_or(1, |i| i + 1)
}

/// The texts of a mesh's policy files, read but not parsed: cheap to read
/// on every request, and compared by digest to reuse a parsed set.
#[derive(Debug, Clone)]
pub struct PolicySources {
    /// `(path, text)` of each global file.
    pub global: Vec<(String, String)>,
    /// `(domain, path, text)` of each domain file.
    pub domains: Vec<(String, String, String)>,
}

impl PolicySources {
    /// Reads `<root>/policies/*.rego` and every `<root>/<domain>/policies/*.rego`.
    pub fn read(root: &Path) -> Result<Self> {
        let mut global = Vec::new();
        for path in rego_files(&root.join("policies"))? {
            global.push(read(&path, root)?);
        }
        let mut domain_names: Vec<String> = std::fs::read_dir(root)
            .map_err(|source| PolicyError::Read {
                path: root.display().to_string(),
                source,
            })?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("policies").is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|d| !d.starts_with('.') && d != "policies")
            .collect();
        domain_names.sort();
        let mut domains = Vec::new();
        for d in domain_names {
            for path in rego_files(&root.join(&d).join("policies"))? {
                let (shown, text) = read(&path, root)?;
                domains.push((d.clone(), shown, text));
            }
        }
        Ok(PolicySources { global, domains })
    }

    /// The digest [`PolicySet::digest`] gives the set built from these.
    pub fn digest(&self) -> String {
        digest(
            self.global
                .iter()
                .map(|(p, t)| (p.as_str(), t.as_str()))
                .chain(
                    self.domains
                        .iter()
                        .map(|(_, p, t)| (p.as_str(), t.as_str())),
                ),
        )
    }

    /// Parses the files into a policy set.
    pub fn build(self) -> Result<PolicySet> {
        PolicySet::from_sources(self.global, self.domains)
    }
}

fn digest<'a>(files: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (path, text) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl PolicySet {
    /// Loads `<root>/policies/*.rego` (global) and every
    /// `<root>/<domain>/policies/*.rego` (that domain's).
    pub fn load(root: &Path) -> Result<Self> {
        let sources = PolicySources::read(root)?;
        Self::from_sources(sources.global, sources.domains)
    }

    /// Builds a set from texts: global `(path, text)` and domain
    /// `(domain, path, text)`. Every file is parsed; the first error wins.
    pub fn from_sources(
        global: Vec<(String, String)>,
        domains: Vec<(String, String, String)>,
    ) -> Result<Self> {
        let mut files = Vec::new();
        let mut engine = regorus::Engine::new();
        for (path, text) in global {
            let package = engine
                .add_policy(path.clone(), text.clone())
                .map_err(|e| syntax_error(&path, &e))?;
            files.push(PolicyFile {
                path,
                package,
                text,
            });
        }
        let mut engines: BTreeMap<String, regorus::Engine> = BTreeMap::new();
        for (domain, path, text) in domains {
            let e = engines.entry(domain.clone()).or_default();
            let package = e
                .add_policy(path.clone(), text.clone())
                .map_err(|e| syntax_error(&path, &e))?;
            // Domain policies live under their own namespace, tests included.
            let own = format!("data.mesh.domain.{domain}");
            let is_own = package == own
                || package.starts_with(&format!("{own}."))
                || package.starts_with(&format!("{own}_test"));
            if !is_own {
                return Err(PolicyError::ForeignPackage {
                    line: package_line(&text),
                    file: path,
                    package: package.trim_start_matches("data.").to_string(),
                    domain,
                });
            }
            files.push(PolicyFile {
                path,
                package,
                text,
            });
        }
        Ok(PolicySet {
            global: Evaluator::new(engine),
            domains: engines
                .into_iter()
                .map(|(d, e)| (d, Evaluator::new(e)))
                .collect(),
            decisions: is_deterministic(files.iter().map(|f| f.text.as_str()))
                .then(Default::default),
            files,
        })
    }

    /// The loaded files, as shown in messages.
    pub fn files(&self) -> Vec<String> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }

    /// A digest of every file's path and text, to notice policy changes.
    pub fn digest(&self) -> String {
        digest(
            self.files
                .iter()
                .map(|f| (f.path.as_str(), f.text.as_str())),
        )
    }

    pub(crate) fn global_engine(&self) -> &Mutex<Evaluator> {
        &self.global
    }

    pub(crate) fn domain_engine(&self, domain: &str) -> Option<&Mutex<Evaluator>> {
        self.domains.get(domain)
    }

    /// The number of policy files loaded.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The value of a rule path (`data.mesh.access.allow`) for an input;
    /// `None` when undefined.
    pub(crate) fn value(
        engine: &Mutex<Evaluator>,
        input: &Value,
        path: &str,
    ) -> Result<Option<Value>> {
        Ok(Self::values(engine, input, &[path])?.pop().flatten())
    }

    /// The values of several rule paths for one input, which is converted
    /// and set once.
    pub(crate) fn values(
        engine: &Mutex<Evaluator>,
        input: &Value,
        paths: &[&str],
    ) -> Result<Vec<Option<Value>>> {
        let mut e = engine
            .lock()
            .map_err(|_| PolicyError::Eval("the policy engine was poisoned by a panic".into()))?;
        let input = serde_json::from_value::<regorus::Value>(input.clone())
            .map_err(|err| PolicyError::Eval(err.to_string()))?;
        e.engine.set_input(input);
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            out.push(match e.value(path)? {
                Some(v) => Some(
                    serde_json::to_value(&v).map_err(|err| PolicyError::Eval(err.to_string()))?,
                ),
                None => None,
            });
        }
        Ok(out)
    }

    /// [`Self::values`] for a fixed number of rules.
    fn rules<const N: usize>(
        engine: &Mutex<Evaluator>,
        input: &Value,
        paths: [&str; N],
    ) -> Result<[Option<Value>; N]> {
        Self::values(engine, input, &paths)?
            .try_into()
            .map_err(|_| PolicyError::Eval("one value per rule was expected".into()))
    }

    /// Evaluates any query against the global policies, for debugging
    /// (`mesh policy eval`).
    pub fn eval(&self, query: &str, input: &Value) -> Result<Option<Value>> {
        Self::value(&self.global, input, query)
    }

    /// Denials, masks and row filters a package adds, from the values of
    /// its `deny`, `masks` and `row_filters` rules.
    fn restrictions(
        package: &str,
        values: [Option<Value>; 3],
        denials: &mut Vec<String>,
        masks: &mut BTreeMap<String, Mask>,
        filters: &mut Vec<String>,
    ) -> Result<()> {
        let [deny, found_masks, row_filters] = values;
        let shape = |rule: &str, v: &Value, wanted: &str| {
            PolicyError::Eval(format!(
                "{package}.{rule} is {v}, not {wanted}; a policy of the wrong shape refuses every read until it is fixed"
            ))
        };
        match deny {
            None => {}
            Some(Value::Array(reasons)) => {
                for r in reasons {
                    denials.push(r.as_str().map_or_else(|| r.to_string(), str::to_string));
                }
            }
            // A single reason (`deny := "why"`) is one denial.
            Some(Value::String(r)) => denials.push(r),
            Some(other) => return Err(shape("deny", &other, "a set of reasons")),
        }
        match found_masks {
            None => {}
            Some(Value::Object(m)) => {
                for (column, mask) in m {
                    let mask = Mask::from_policy(&mask).ok_or_else(|| {
                        PolicyError::Eval(format!(
                            "{package}.masks[{column:?}] is {mask}, not a mask (redact, hash, null, last4, sql:<expr>)"
                        ))
                    })?;
                    let merged = match masks.remove(&column) {
                        Some(old) => old.stricter(mask),
                        None => mask,
                    };
                    masks.insert(column, merged);
                }
            }
            Some(other) => {
                return Err(shape("masks", &other, "an object of column to mask"));
            }
        }
        match row_filters {
            None => {}
            Some(Value::Array(v)) => {
                for f in v {
                    let Some(s) = f.as_str() else {
                        return Err(PolicyError::Eval(format!(
                            "{package}.row_filters holds {f}, not a SQL predicate string"
                        )));
                    };
                    if !filters.iter().any(|x| x == s) {
                        filters.push(s.to_string());
                    }
                }
            }
            Some(other) => {
                return Err(shape("row_filters", &other, "a set of SQL predicates"));
            }
        }
        Ok(())
    }

    /// The decision for one read: the global policies allow or not, and
    /// the global and domain policies together add denials, masks (the
    /// stricter one per column) and row filters.
    pub fn decide(&self, input: &AccessInput) -> Result<Decision> {
        let json = serde_json::to_value(input).map_err(|e| PolicyError::Eval(e.to_string()))?;
        let Some(decisions) = &self.decisions else {
            return self.evaluate_json(input, &json);
        };
        let key = json.to_string();
        if let Some(d) = decisions.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(d);
        }
        let decision = self.evaluate_json(input, &json)?;
        if let Ok(mut m) = decisions.lock() {
            if m.len() >= DECISIONS_KEPT {
                m.clear();
            }
            m.insert(key, decision.clone());
        }
        Ok(decision)
    }

    /// [`Self::decide`], always evaluated (no decision is reused).
    pub fn evaluate(&self, input: &AccessInput) -> Result<Decision> {
        let json = serde_json::to_value(input).map_err(|e| PolicyError::Eval(e.to_string()))?;
        self.evaluate_json(input, &json)
    }

    fn evaluate_json(&self, input: &AccessInput, json: &Value) -> Result<Decision> {
        let mut denials = Vec::new();
        let mut masks = BTreeMap::new();
        let mut filters = Vec::new();
        let [allow, deny, found_masks, row_filters] = Self::rules(
            &self.global,
            json,
            [
                "data.mesh.access.allow",
                "data.mesh.access.deny",
                "data.mesh.access.masks",
                "data.mesh.access.row_filters",
            ],
        )?;
        let allow = match allow {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                return Err(PolicyError::Eval(format!(
                    "data.mesh.access.allow is {other}, not true or false; a policy of the wrong shape refuses every read until it is fixed"
                )));
            }
        };
        Self::restrictions(
            "data.mesh.access",
            [deny, found_masks, row_filters],
            &mut denials,
            &mut masks,
            &mut filters,
        )?;
        let domain = &input.product.domain;
        if let Some(engine) = self.domains.get(domain) {
            let package = format!("data.mesh.domain.{domain}");
            let (deny, m, f) = (
                format!("{package}.deny"),
                format!("{package}.masks"),
                format!("{package}.row_filters"),
            );
            let values = Self::rules(engine, json, [deny.as_str(), m.as_str(), f.as_str()])?;
            Self::restrictions(&package, values, &mut denials, &mut masks, &mut filters)?;
        }
        let (allowed, reason) = if !denials.is_empty() {
            (false, denials.join("; "))
        } else if !allow {
            (
                false,
                format!(
                    "no policy allows `{}` to read `{}`; ask its owners with `mesh access request {}`",
                    input.principal.name, input.product.id, input.product.id
                ),
            )
        } else {
            (true, "allowed by policy".to_string())
        };
        Ok(Decision {
            allowed,
            reason,
            masks,
            row_filters: filters,
        })
    }

    /// Runs every `test_` rule (OPA's convention): a test passes when it
    /// evaluates to true.
    pub fn run_tests(&self) -> Vec<TestOutcome> {
        let mut out = Vec::new();
        for f in &self.files {
            let engine = f
                .package
                .strip_prefix("data.mesh.domain.")
                .and_then(|rest| {
                    self.domains
                        .iter()
                        .find(|(d, _)| {
                            rest == d.as_str()
                                || rest.starts_with(&format!("{d}."))
                                || rest.starts_with(&format!("{d}_test"))
                        })
                        .map(|(_, e)| e)
                })
                .unwrap_or(&self.global);
            for rule in test_rules(&f.text) {
                let name = format!("{}.{rule}", f.package);
                let (passed, detail) = match Self::value(engine, &Value::Null, &name) {
                    Ok(Some(Value::Bool(true))) => (true, None),
                    Ok(Some(other)) => (false, Some(format!("evaluated to {other}"))),
                    Ok(None) => (false, Some("undefined (a condition did not hold)".into())),
                    Err(e) => (false, Some(e.to_string())),
                };
                out.push(TestOutcome {
                    name,
                    file: f.path.clone(),
                    passed,
                    detail,
                });
            }
        }
        out
    }
}

/// Names of the `test_` rules a file declares, in order, each once.
fn test_rules(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if !line.starts_with("test_") {
            continue;
        }
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod decision_cache {
    use super::is_deterministic;

    #[test]
    fn a_policy_reading_the_clock_is_never_cached() {
        assert!(is_deterministic(["allow if input.x == 1"]));
        assert!(!is_deterministic([
            "allow if input.x == 1",
            "deny contains \"late\" if time.now_ns() > 0"
        ]));
    }
}
