//! Recording each deployed version's column classifications, so reads of
//! any version apply the strictest one (see `mesh_catalog::classes`).

use mesh_catalog::classes::{DeclaredColumn, version_rows};
use mesh_catalog::{ColumnClass, ProductRecord};
use mesh_spec::ProductDescriptor;

use crate::error::Result;
use crate::mesh::Mesh;

fn declared(p: &ProductDescriptor) -> Vec<(String, Vec<DeclaredColumn>)> {
    p.outputs
        .iter()
        .map(|o| {
            (
                // A line's descriptor names its outputs `<output>_v<major>`.
                o.original_name
                    .as_ref()
                    .unwrap_or(&o.name.value)
                    .to_string(),
                o.columns
                    .iter()
                    .map(|c| DeclaredColumn {
                        name: c.name.to_string(),
                        classification: c.classification.map(|cl| cl.as_str().to_string()),
                        renamed_from: c.renamed_from.as_ref().map(|r| r.value.to_string()),
                    })
                    .collect(),
            )
        })
        .collect()
}

impl Mesh {
    /// Records the classifications `products` declare, before they are
    /// deployed: a row for a version that then fails to deploy can only
    /// make reads stricter. A family with no rows yet (deployed before
    /// classifications were recorded) first gets the rows of each version
    /// still deployed, so its history is covered from now on.
    pub(crate) async fn record_classes(
        &self,
        products: &[ProductDescriptor],
        deployed: &[(ProductRecord, ProductDescriptor)],
    ) -> Result<()> {
        for p in products {
            let family = p.product_ref();
            let mut rows: Vec<ColumnClass> = self.catalog.classes(&family.to_string()).await?;
            if rows.is_empty() {
                // The family's lines (older majors) first, then its head.
                let mut kept: Vec<&(ProductRecord, ProductDescriptor)> = deployed
                    .iter()
                    .filter(|(r, _)| {
                        r.line_of.as_ref() == Some(&family)
                            || (r.product == family && r.line_of.is_none())
                    })
                    .collect();
                kept.sort_by_key(|(r, _)| semver::Version::parse(&r.version).ok());
                for (r, old) in kept {
                    let new = version_rows(&rows, &family.to_string(), &r.version, &declared(old));
                    rows.extend(new);
                }
            }
            let new = version_rows(
                &rows,
                &family.to_string(),
                &p.version.to_string(),
                &declared(p),
            );
            rows.extend(new);
            self.catalog.record_classes(&rows).await?;
        }
        Ok(())
    }
}
