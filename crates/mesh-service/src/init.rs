//! `mesh init`: a new project with one commented example product.

use std::path::Path;

use crate::error::{Result, ServiceError};

const MESH_YAML: &str = "# Meshwork project. Each folder below is a domain; each domain folder
# holds product folders with a product.yaml.
apiVersion: meshwork/v1
kind: Mesh
name: NAME
# state_dir: .mesh            # catalog (SQLite) and tables (Delta); default .mesh
";

const EXAMPLE_PRODUCT: &str =
    "# A data product: its contract (outputs), how it is built (inputs + SQL)
# and how it is checked before each release. See docs/descriptor.md.
apiVersion: meshwork/v1
kind: DataProduct
domain: example               # the owning domain; must match the folder
name: greetings               # unique within the domain
version: 1.0.0                # semver of the contract
status: active                # draft | active | deprecated | retired
owner: example-team@your.org
description:
  purpose: A tiny example product, one row per greeting.
  usage: Try `mesh query \"SELECT * FROM example.greetings\"`.
tags: [example]
inputs:
  - name: raw_greetings       # the SQL reads this input as a table
    source:
      format: csv             # csv | parquet | json
      path: data/greetings.csv
      columns:                # optional; declared columns make the source a contract too
        - {name: id, type: bigint, nullable: false}
        - {name: language, type: string}
        - {name: text, type: string}
transform:
  sql: transform.sql
outputs:
  - name: greetings           # queried as example.greetings
    primary_key: [id]
    columns:
      - {name: id, type: bigint, nullable: false, description: Greeting id}
      - {name: language, type: string, description: ISO 639-1 code}
      - {name: text, type: string, description: The greeting}
    quality:
      - {check: row_count, min: 1}
      - {check: not_null, column: text}
      - {check: accepted_values, column: language, values: [en, fr, de, es]}
slo: {freshness: 7d}             # promised to consumers; `mesh deploy` requires it (policies/deploy.rego)
";

const EXAMPLE_SQL: &str = "SELECT id, language, text\nFROM raw_greetings\n";

const EXAMPLE_CSV: &str = "id,language,text\n1,en,Hello\n2,fr,Bonjour\n3,de,Hallo\n4,es,Hola\n";

/// Where a new project keeps its catalog and tables (`mesh init
/// --catalog --storage`); the embedded default for each left `None`.
#[derive(Debug, Clone, Default)]
pub struct Backends {
    pub catalog: Option<String>,
    pub storage: Option<String>,
}

/// Writes a new project into `dir`, which must be absent or empty.
pub fn init(dir: &Path) -> Result<()> {
    init_with(dir, &Backends::default())
}

/// [`init`], naming the backends in mesh.yaml. A URL this build cannot
/// use is refused before anything is written.
pub fn init_with(dir: &Path, backends: &Backends) -> Result<()> {
    let mut settings = String::new();
    for backend in mesh_spec::backends::Backend::ALL {
        let url = match backend {
            mesh_spec::backends::Backend::Catalog => &backends.catalog,
            mesh_spec::backends::Backend::Storage => &backends.storage,
        };
        let Some(url) = url else { continue };
        let key = backend.key();
        if let Some(message) = backend.written_problem(url) {
            return Err(ServiceError::Invalid {
                diagnostics: vec![mesh_spec::Diagnostic::error(
                    "backend-url",
                    format!("--{key}: {message}"),
                )],
            });
        }
        settings.push_str(&format!("{key}: {url}\n"));
    }
    if dir.join(mesh_spec::project::PROJECT_FILE).exists() {
        return Err(ServiceError::Exists {
            path: dir
                .join(mesh_spec::project::PROJECT_FILE)
                .display()
                .to_string(),
        });
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ServiceError::State {
            path: path.clone(),
            source,
        }
    };
    let product = dir.join("example").join("greetings");
    std::fs::create_dir_all(product.join("data")).map_err(io(&product))?;
    let name = std::path::absolute(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "mesh".into());
    let files: [(std::path::PathBuf, String); 5] = [
        (
            dir.join("mesh.yaml"),
            MESH_YAML.replace("NAME", &name) + &settings,
        ),
        (
            dir.join(".gitignore"),
            "# Meshwork state: catalog and tables\n.mesh/\n".to_string(),
        ),
        (product.join("product.yaml"), EXAMPLE_PRODUCT.to_string()),
        (product.join("transform.sql"), EXAMPLE_SQL.to_string()),
        (
            product.join("data").join("greetings.csv"),
            EXAMPLE_CSV.to_string(),
        ),
    ];
    for (path, text) in files {
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    write_policy_pack(dir)
}

/// Writes the default policy pack into `<dir>/policies/`.
pub fn write_policy_pack(dir: &Path) -> Result<()> {
    mesh_policy::write_default_pack(dir).map_err(|(path, source)| ServiceError::State {
        path: path.display().to_string(),
        source,
    })
}
