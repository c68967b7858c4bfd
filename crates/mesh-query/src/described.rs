//! What `information_schema` lists: the tables a session holds, each
//! with its declared schema, and no access decision.
//!
//! DataFusion's information schema asks every table of every schema for
//! its provider. Asking the guarded `mesh` catalog would decide a read of
//! each table, so one denied table would fail the whole listing. The
//! [`Described`] catalog list answers the same names with empty tables of
//! the declared schemas instead: it lists exactly the tables the session
//! can name (the products the principal may see), as `pg_catalog`, Flight
//! SQL and the REST catalog do.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::datasource::empty::EmptyTable;
use datafusion::error::{DataFusionError, Result};

use crate::provider::{CATALOG_NAME, DomainSchema, MeshCatalog};

/// The `mesh` catalog as `information_schema` describes it. It holds the
/// catalog weakly: the catalog holds it (through its
/// `information_schema` schema), and a cycle would keep every session.
#[derive(Debug)]
pub struct Described {
    mesh: Weak<MeshCatalog>,
}

impl Described {
    pub fn over(mesh: Arc<MeshCatalog>) -> Self {
        Described {
            mesh: Arc::downgrade(&mesh),
        }
    }
}

impl CatalogProviderList for Described {
    fn register_catalog(
        &self,
        name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        tracing::warn!(catalog = %name, "information_schema cannot register catalogs");
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        vec![CATALOG_NAME.to_string()]
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let mesh = self.mesh.upgrade()?;
        (name == CATALOG_NAME).then(|| Arc::new(DescribedCatalog { mesh }) as _)
    }
}

#[derive(Debug)]
struct DescribedCatalog {
    mesh: Arc<MeshCatalog>,
}

impl CatalogProvider for DescribedCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.mesh.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match self.mesh.domain(name) {
            Some(domain) => Some(Arc::new(DescribedSchema { domain })),
            // Global addresses list no tables, and system schemas (such
            // as `pg_catalog`) describe themselves.
            None => self.mesh.schema(name),
        }
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        Err(DataFusionError::Plan(format!(
            "`{name}`: information_schema is read-only"
        )))
    }
}

/// A domain's served outputs as empty tables of their declared schemas.
#[derive(Debug)]
struct DescribedSchema {
    domain: Arc<DomainSchema>,
}

#[async_trait]
impl SchemaProvider for DescribedSchema {
    fn table_names(&self) -> Vec<String> {
        self.domain.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .domain
            .declared_schema(name)
            .map(|schema| Arc::new(EmptyTable::new(schema)) as Arc<dyn TableProvider>))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.domain.declared_schema(name).is_some()
    }
}
