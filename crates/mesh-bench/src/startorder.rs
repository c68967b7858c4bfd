//! The start-up function order `crates/mesh-cli/startup.order`: the
//! functions of `mesh` that short commands run, which release builds ask
//! the linker to place together (see `docs/startup-order.md`).
//!
//! `collect` runs `mesh` under Callgrind on the start-up mesh, once for
//! `SELECT 1` and once for a query of a published product, and lists the
//! binary's functions each run executed: first those of `SELECT 1`, then
//! those only the product query adds, each group by address in the
//! measured binary (so a crate's functions stay near each other).
//! `coverage` reports how many of an order's symbols a binary still has.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use object::{Object, ObjectSymbol, SymbolKind};

use crate::Bench;

/// The kernel maps file-backed pages around a fault in windows of this
/// size (`fault_around_bytes`), so it is the unit a scattered start-up
/// pays for.
const WINDOW: u64 = 64 * 1024;

/// The statements an order is collected from, in order of priority.
const STATEMENTS: [&str; 2] = [
    "SELECT 1",
    "SELECT count(*), sum(amount) FROM domain_00.product_000",
];

/// A function of the binary: its address and size.
#[derive(Clone, Copy)]
struct Function {
    address: u64,
    size: u64,
}

/// Collects the order on the start-up mesh of `products` products,
/// writes it to `out` and returns a report.
pub(crate) fn collect(bench: &Bench, products: usize, out: &Path) -> Result<String> {
    let project = bench.startup_mesh(products)?;
    let symbols = text_symbols(&bench.mesh)?;
    let binary = bench
        .mesh
        .file_name()
        .and_then(|n| n.to_str())
        .context("the mesh binary's path has no file name")?;
    let mut report = String::new();
    let mut order: Vec<String> = Vec::new();
    let mut placed: HashSet<String> = HashSet::new();
    let mesh = std::path::absolute(&bench.mesh)?;
    for (i, sql) in STATEMENTS.iter().enumerate() {
        let profile = bench.work.join(format!("callgrind.{i}.out"));
        let mut valgrind = Command::new("valgrind");
        valgrind
            .arg("--tool=callgrind")
            .arg("--demangle=no")
            .arg(format!("--callgrind-out-file={}", profile.display()))
            .arg(&mesh)
            .args(["query", sql, "--format", "csv"])
            .stdout(std::process::Stdio::null());
        bench.mesh_env(&mut valgrind, &project);
        let status = valgrind
            .status()
            .context("running valgrind (Debian package `valgrind`)")?;
        if !status.success() {
            bail!("`mesh query {sql:?}` under callgrind failed: {status}");
        }
        let text = std::fs::read_to_string(&profile)
            .with_context(|| format!("reading {}", profile.display()))?;
        let executed = executed_functions(&text, binary);
        let mut found: Vec<(&String, Function)> = executed
            .iter()
            .filter_map(|name| symbols.get(name).map(|f| (name, *f)))
            .collect();
        let all: Vec<Function> = found.iter().map(|(_, f)| *f).collect();
        found.retain(|(name, _)| !placed.contains(*name));
        found.sort_by_key(|(_, f)| f.address);
        let bytes: u64 = all.iter().map(|f| f.size).sum();
        writeln!(
            report,
            "{sql:?}: {} functions of {binary} executed ({} KiB), over {} {}-KiB windows \
             as laid out, {} if packed; {} new to the order",
            all.len(),
            bytes / 1024,
            windows(&all),
            WINDOW / 1024,
            bytes.div_ceil(WINDOW),
            found.len()
        )?;
        for (name, _) in found {
            placed.insert(name.clone());
            order.push(name.clone());
        }
    }
    let mut file = order.join("\n");
    file.push('\n');
    std::fs::write(out, file).with_context(|| format!("writing {}", out.display()))?;
    writeln!(
        report,
        "{} symbols written to {}",
        order.len(),
        out.display()
    )?;
    Ok(report)
}

/// How many of the order's symbols `mesh` defines.
pub(crate) fn coverage(mesh: &Path, order: &Path) -> Result<String> {
    let symbols = text_symbols(mesh)?;
    let text =
        std::fs::read_to_string(order).with_context(|| format!("reading {}", order.display()))?;
    let names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let present: Vec<Function> = names
        .iter()
        .filter_map(|n| symbols.get(*n))
        .copied()
        .collect();
    Ok(format!(
        "{} of {} ordered symbols are in {}; they span {} {}-KiB windows of its text\n",
        present.len(),
        names.len(),
        mesh.display(),
        windows(&present),
        WINDOW / 1024
    ))
}

/// The distinct fault-around windows the functions touch.
fn windows(functions: &[Function]) -> usize {
    let mut touched = HashSet::new();
    for f in functions {
        let last = f.address + f.size.max(1) - 1;
        touched.extend(f.address / WINDOW..=last / WINDOW);
    }
    touched.len()
}

/// The defined function symbols of an ELF binary, by name.
fn text_symbols(binary: &Path) -> Result<HashMap<String, Function>> {
    let data = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{} is not an object file", binary.display()))?;
    let mut out = HashMap::new();
    for symbol in file.symbols() {
        if symbol.kind() != SymbolKind::Text || symbol.is_undefined() || symbol.size() == 0 {
            continue;
        }
        if let Ok(name) = symbol.name() {
            out.entry(name.to_string()).or_insert(Function {
                address: symbol.address(),
                size: symbol.size(),
            });
        }
    }
    if out.is_empty() {
        bail!("{} has no function symbols (stripped?)", binary.display());
    }
    Ok(out)
}

/// The names of the functions a Callgrind profile attributes cost to in
/// the object whose file name is `binary`, in order of first appearance.
///
/// Callgrind compresses names: `fn=(7) name` defines id 7, a later
/// `fn=(7)` refers to it, and `cfn=` (a callee) shares `fn=`'s ids, as
/// `cob=` shares `ob=`'s. Only `fn=` lines carry the function's own cost,
/// and they belong to the object the last `ob=` line named.
fn executed_functions(profile: &str, binary: &str) -> Vec<String> {
    let mut objects: HashMap<String, String> = HashMap::new();
    let mut functions: HashMap<String, String> = HashMap::new();
    let mut in_binary = false;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in profile.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "ob" | "cob" => {
                let name = resolve(&mut objects, value);
                if key == "ob" {
                    in_binary =
                        Path::new(&name).file_name().and_then(|n| n.to_str()) == Some(binary);
                }
            }
            "fn" | "cfn" => {
                let name = resolve(&mut functions, value);
                if key == "fn" && in_binary && seen.insert(name.clone()) {
                    out.push(name);
                }
            }
            _ => {}
        }
    }
    out
}

/// Resolves a possibly compressed name: `(id) name` defines, `(id)`
/// refers, a bare name is itself.
fn resolve(table: &mut HashMap<String, String>, value: &str) -> String {
    let value = value.trim();
    let Some(rest) = value.strip_prefix('(') else {
        return value.to_string();
    };
    let Some((id, name)) = rest.split_once(')') else {
        return value.to_string();
    };
    let name = name.trim();
    if name.is_empty() {
        table.get(id).cloned().unwrap_or_default()
    } else {
        table.insert(id.to_string(), name.to_string());
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_compressed_names_of_the_binary_only() {
        let profile = "\
version: 1
cmd: ./mesh query
ob=(1) /usr/lib/libc.so.6
fn=(1) memcpy
0 10
ob=(2) /opt/bin/mesh
fn=(2) main
0 5
cob=(1)
cfn=(1)
calls=1 0
0 3
cfn=(3) _ZN4mesh3run17h0123456789abcdefE
calls=1 0
0 2
fn=(3)
0 7
ob=(1)
fn=(4) free
0 1
ob=(2)
fn=(2)
0 1
";
        assert_eq!(
            executed_functions(profile, "mesh"),
            vec!["main", "_ZN4mesh3run17h0123456789abcdefE"]
        );
    }

    #[test]
    fn counts_each_window_once() {
        let f = |address, size| Function { address, size };
        // Two functions in the first window, one straddling the next two.
        let functions = [f(0, 100), f(4096, 10), f(WINDOW - 8, 16)];
        assert_eq!(windows(&functions), 2);
        assert_eq!(windows(&[f(3 * WINDOW, 1)]), 1);
    }
}
