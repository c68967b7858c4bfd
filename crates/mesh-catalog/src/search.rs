//! Ranked full-text search over product metadata, with tantivy.
//!
//! The index is built in memory from the documents given, so it can never
//! disagree with the catalog it was built from, whatever the backend.

use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, IndexWriter, TantivyDocument, doc};

use crate::error::{CatalogError, Result};

/// What is searchable about one product.
#[derive(Debug, Clone, Default)]
pub struct SearchDoc {
    /// The product's address, `<domain>/<product>`; returned on a hit.
    pub id: String,
    pub domain: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub owner: String,
    /// Output names, column names and column descriptions.
    pub columns: Vec<String>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    pub score: f32,
}

struct Fields {
    id: Field,
    domain: Field,
    name: Field,
    description: Field,
    tags: Field,
    owner: Field,
    columns: Field,
}

fn err(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Search(e.to_string())
}

/// Ranks `docs` against the words of `query`, best first.
///
/// Names weigh most, then tags and columns, then owners and descriptions.
/// English stemming lets `order` find `orders`; a typo of one letter in a
/// word of five or more letters still matches.
pub fn search(docs: &[SearchDoc], query: &str, limit: usize) -> Result<Vec<Hit>> {
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("en_stem")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let mut sb = Schema::builder();
    let f = Fields {
        id: sb.add_text_field("id", STRING | STORED),
        domain: sb.add_text_field("domain", text.clone()),
        name: sb.add_text_field("name", text.clone()),
        description: sb.add_text_field("description", text.clone()),
        tags: sb.add_text_field("tags", text.clone()),
        owner: sb.add_text_field("owner", text.clone()),
        columns: sb.add_text_field("columns", text),
    };
    let index = Index::create_in_ram(sb.build());
    let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).map_err(err)?;
    for d in docs {
        // Underscores join words in names; split them so `order_lines` matches `lines`.
        let words = |s: &str| s.replace(['_', '@', '.', '/', '-'], " ");
        writer
            .add_document(doc!(
                f.id => d.id.clone(),
                f.domain => words(&d.domain),
                f.name => words(&d.name),
                f.description => d.description.clone(),
                f.tags => words(&d.tags.join(" ")),
                f.owner => words(&d.owner),
                f.columns => words(&d.columns.join(" ")),
            ))
            .map_err(err)?;
    }
    writer.commit().map_err(err)?;
    let reader = index.reader().map_err(err)?;
    let searcher = reader.searcher();
    let mut parser = QueryParser::for_index(
        &index,
        vec![f.name, f.domain, f.tags, f.columns, f.owner, f.description],
    );
    for (field, boost) in [
        (f.name, 4.0),
        (f.domain, 2.0),
        (f.tags, 2.0),
        (f.columns, 1.5),
        (f.owner, 1.0),
        (f.description, 1.0),
    ] {
        parser.set_field_boost(field, boost);
    }
    let cleaned: String = query
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c.is_whitespace() {
                c
            } else {
                ' '
            }
        })
        .collect();
    let exact = parser.parse_query_lenient(&cleaned).0;
    let mut top = searcher
        .search(&exact, &TopDocs::with_limit(limit).order_by_score())
        .map_err(err)?;
    if top.is_empty() {
        for field in [f.name, f.domain, f.tags, f.columns, f.owner, f.description] {
            parser.set_field_fuzzy(field, false, 1, true);
        }
        let fuzzy = parser.parse_query_lenient(&cleaned).0;
        top = searcher
            .search(&fuzzy, &TopDocs::with_limit(limit).order_by_score())
            .map_err(err)?;
    }
    top.into_iter()
        .map(|(score, addr)| {
            let doc: TantivyDocument = searcher.doc(addr).map_err(err)?;
            let id = doc
                .get_first(f.id)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            Ok(Hit { id, score })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> Vec<SearchDoc> {
        vec![
            SearchDoc {
                id: "sales/orders".into(),
                domain: "sales".into(),
                name: "orders".into(),
                description: "Every confirmed order, one row per order line.".into(),
                tags: vec!["revenue".into()],
                owner: "sales-data@acme.example".into(),
                columns: vec!["order_id".into(), "amount".into()],
            },
            SearchDoc {
                id: "customers/profiles".into(),
                domain: "customers".into(),
                name: "profiles".into(),
                description: "One row per customer, with contact details.".into(),
                tags: vec!["pii".into()],
                owner: "crm@acme.example".into(),
                columns: vec!["customer_id".into(), "email".into()],
            },
        ]
    }

    #[test]
    fn names_rank_above_descriptions() {
        let hits = search(&docs(), "customer", 10).unwrap();
        assert_eq!(hits[0].id, "customers/profiles");
        let hits = search(&docs(), "order", 10).unwrap();
        assert_eq!(hits[0].id, "sales/orders");
    }

    #[test]
    fn searches_tags_owners_and_columns() {
        assert_eq!(
            search(&docs(), "revenue", 10).unwrap()[0].id,
            "sales/orders"
        );
        assert_eq!(
            search(&docs(), "crm", 10).unwrap()[0].id,
            "customers/profiles"
        );
        assert_eq!(
            search(&docs(), "email", 10).unwrap()[0].id,
            "customers/profiles"
        );
        assert!(search(&docs(), "zebra", 10).unwrap().is_empty());
    }

    #[test]
    fn tolerates_one_typo() {
        assert_eq!(search(&docs(), "revenu", 10).unwrap()[0].id, "sales/orders");
    }
}
