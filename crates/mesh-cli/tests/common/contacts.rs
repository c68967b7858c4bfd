//! The lineage fixture mesh: hr/employees (with a `pii` e-mail column,
//! from a CSV) and ops/contacts, whose `min(email)` carries addresses.

use std::path::{Path, PathBuf};

use super::{edit, ok};

pub const EMPLOYEES: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: hr
name: employees
version: 1.0.0
owner: hr@acme.example
description:
  purpose: Who works here.
slo: {freshness: 7d}
inputs:
  - name: raw
    source:
      format: csv
      path: data/employees.csv
      columns:
        - {name: id, type: bigint, nullable: false}
        - {name: email, type: string}
        - {name: dept, type: string}
transform:
  query: SELECT id, email, dept FROM raw
outputs:
  - name: employees
    columns:
      - {name: id, type: bigint, nullable: false, description: Employee id}
      - {name: email, type: string, classification: pii, description: Work e-mail}
      - {name: dept, type: string, description: Department}
"#;

/// `min(email)` carries an address; `count(email)` cannot.
pub const CONTACTS: &str = r#"apiVersion: meshwork/v1
kind: DataProduct
domain: ops
name: contacts
version: 1.0.0
owner: ops@acme.example
description:
  purpose: One contact per department.
slo: {freshness: 7d}
inputs:
  - name: e
    product: hr/employees
    version: ^1
transform:
  query: SELECT dept, min(email) AS sample_contact, count(email) AS staff FROM e GROUP BY dept
outputs:
  - name: contacts
    columns:
      - {name: dept, type: string, description: Department}
      - {name: sample_contact, type: string, description: Someone to ask}
      - {name: staff, type: bigint, nullable: false, description: Head count}
"#;

pub const UNCLASSIFIED: &str =
    "      - {name: sample_contact, type: string, description: Someone to ask}";

pub const DECLASSIFIED: &str = "      - name: sample_contact
        type: string
        description: Someone to ask
        declassify: {from: hr.employees.email, reason: \"first address per department, published on the intranet\"}";

pub const ADDRESSES: [&str; 3] = ["ada@acme.example", "bo@acme.example", "cy@acme.example"];

pub fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `mesh init` plus hr/employees and ops/contacts (not deployed).
pub fn project(tmp: &Path) -> PathBuf {
    let dir = super::init(tmp);
    write(&dir.join("hr/employees/product.yaml"), EMPLOYEES);
    write(
        &dir.join("hr/employees/data/employees.csv"),
        &format!(
            "id,email,dept\n1,{},eng\n2,{},eng\n3,{},ops\n",
            ADDRESSES[0], ADDRESSES[1], ADDRESSES[2]
        ),
    );
    write(&dir.join("ops/contacts/product.yaml"), CONTACTS);
    ok(&dir, &["principal", "add", "bob"]);
    dir
}

pub fn declassified(tmp: &Path) -> PathBuf {
    let dir = project(tmp);
    edit(
        &dir,
        "ops/contacts/product.yaml",
        UNCLASSIFIED,
        DECLASSIFIED,
    );
    dir
}

pub fn contacts(dir: &Path) -> String {
    ok(
        dir,
        &[
            "query",
            "SELECT dept, sample_contact FROM ops.contacts ORDER BY dept",
            "--format",
            "csv",
        ],
    )
}

/// The catalog of a mesh deployed before lineage: the descriptor without
/// the classification and no lineage stored (as an older `mesh` left it).
pub fn forget_classification(dir: &Path) {
    let old = "        declassify: {from: hr.employees.email, reason: \"first address per department, published on the intranet\"}\n";
    if let Some(url) = super::catalog_url(dir) {
        let sql = format!(
            "BEGIN; UPDATE products SET descriptor = replace(descriptor, $old${old}$old$, '') \
             WHERE domain = 'ops' AND strpos(descriptor, $old${old}$old$) > 0; \
             DELETE FROM column_lineage; COMMIT; \
             SELECT count(*) FROM products WHERE domain = 'ops' AND descriptor LIKE '%declassify%';"
        );
        let out = std::process::Command::new("psql")
            .args(["-X", "-Atq", "-v", "ON_ERROR_STOP=1", &url, "-c", &sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.lines().last(), Some("0"), "{out:?}");
        return;
    }
    let script = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
(text,) = db.execute("SELECT descriptor FROM products WHERE domain = 'ops'").fetchone()
old = '        declassify: {from: hr.employees.email, reason: "first address per department, published on the intranet"}\n'
assert old in text
db.execute("UPDATE products SET descriptor = ? WHERE domain = 'ops'", (text.replace(old, ""),))
db.execute("DELETE FROM column_lineage")
db.commit()
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, dir.join(".mesh/catalog.db").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Declares hr/employees' `retention:` (a flow mapping such as
/// `{keep_releases: 2}`).
pub fn retain_employees(dir: &Path, rule: &str) {
    edit(
        dir,
        "hr/employees/product.yaml",
        "slo: {freshness: 7d}",
        &format!("slo: {{freshness: 7d}}\nretention: {rule}"),
    );
}
