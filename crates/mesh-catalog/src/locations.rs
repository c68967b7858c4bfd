//! Paths and table locations as the catalog stores them.
//!
//! A table under the mesh's storage root is stored relative to it
//! (`sales/orders/orders`), and a descriptor relative to the project's
//! folder (`sales/orders/product.yaml`), so a project copied or moved to
//! another folder keeps reading its own sources and writing its own tables.
//! A location outside its root (or any location, when no root is given) is
//! stored as written. Readers of the store always see resolved locations.

/// Converts locations between their stored and resolved forms, below one
/// root (a URL or an absolute path).
#[derive(Debug, Clone, Default)]
pub struct Locations {
    root: Option<String>,
}

impl Locations {
    /// Locations under `root` (a URL or an absolute path, without a trailing
    /// slash) are stored relative to it.
    pub fn under(root: &str) -> Self {
        Locations {
            root: Some(root.trim_end_matches('/').to_string()),
        }
    }

    /// The form to store: relative when the location is under the root.
    pub fn store(&self, location: &str) -> String {
        match &self.root {
            Some(root) => location
                .strip_prefix(root.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|rest| !rest.is_empty())
                .map_or_else(|| location.to_string(), str::to_string),
            None => location.to_string(),
        }
    }

    /// The location a stored form names: a relative one joined to the root.
    pub fn resolve(&self, stored: &str) -> String {
        match &self.root {
            Some(root) if is_relative(stored) => format!("{root}/{stored}"),
            _ => stored.to_string(),
        }
    }

    /// The `LIKE` pattern matching absolute locations under the root, with
    /// `\` as the escape character, and the number of characters to drop
    /// (the root and its slash).
    pub(crate) fn absolute_pattern(&self) -> Option<(String, usize)> {
        let root = self.root.as_ref()?;
        let escaped: String = root
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        Some((format!("{escaped}/%"), root.chars().count() + 1))
    }
}

/// Whether a stored location is relative: neither a URL nor an absolute path.
pub fn is_relative(location: &str) -> bool {
    !location.contains("://") && !location.starts_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_under_the_root_are_stored_relative() {
        let l = Locations::under("/srv/mesh/.mesh/tables/");
        assert_eq!(
            l.store("/srv/mesh/.mesh/tables/sales/orders/orders"),
            "sales/orders/orders"
        );
        assert_eq!(
            l.resolve("sales/orders/orders"),
            "/srv/mesh/.mesh/tables/sales/orders/orders"
        );
        // A sibling folder sharing the root's prefix is not under it.
        assert_eq!(
            l.store("/srv/mesh/.mesh/tables2/x"),
            "/srv/mesh/.mesh/tables2/x"
        );
        assert_eq!(l.store("s3://bucket/x"), "s3://bucket/x");
        assert_eq!(l.resolve("s3://bucket/x"), "s3://bucket/x");
        assert_eq!(l.resolve("/elsewhere/x"), "/elsewhere/x");
    }

    #[test]
    fn object_store_roots_work_the_same_way() {
        let l = Locations::under("s3://bucket/prefix");
        assert_eq!(l.store("s3://bucket/prefix/d/p/o"), "d/p/o");
        assert_eq!(l.resolve("d/p/o"), "s3://bucket/prefix/d/p/o");
    }

    #[test]
    fn without_a_root_locations_are_kept_as_written() {
        let l = Locations::default();
        assert_eq!(l.store("/a/b"), "/a/b");
        assert_eq!(l.resolve("a/b"), "a/b");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        let l = Locations::under("/srv/my_mesh%");
        assert_eq!(
            l.absolute_pattern(),
            Some(("/srv/my\\_mesh\\%/%".into(), 14))
        );
    }
}
