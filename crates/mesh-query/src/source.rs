//! Registering a product's source files as tables.

use std::path::{Path, PathBuf};

use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};
use mesh_spec::validate::source_location;
use mesh_spec::{Source, SourceFormat};

use crate::error::Result;
use crate::schema::arrow_schema;

fn extension(path: &Path, format: SourceFormat) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if !ext.contains('*') => format!(".{ext}"),
        _ => format!(".{}", format.extension()),
    }
}

/// The location DataFusion reads: a URL stays as is, a path becomes absolute.
pub fn source_path(dir: &Path, source: &Source) -> String {
    if source.path.value.contains("://") {
        source.path.value.clone()
    } else {
        source_location(dir, source).to_string_lossy().into_owned()
    }
}

/// Registers `source` under `name`, with its declared schema if it has one.
pub async fn register_source(
    ctx: &SessionContext,
    name: &str,
    dir: &Path,
    source: &Source,
) -> Result<()> {
    let path = source_path(dir, source);
    let ext = extension(&PathBuf::from(&path), source.format);
    let schema = source.columns.as_ref().map(|c| arrow_schema(c));
    match source.format {
        SourceFormat::Csv => {
            let mut opts = CsvReadOptions::new()
                .has_header(source.header)
                .delimiter(source.delimiter)
                .file_extension(&ext);
            if let Some(s) = &schema {
                opts = opts.schema(s);
            }
            ctx.register_csv(name, &path, opts).await?;
        }
        SourceFormat::Json => {
            let mut opts = JsonReadOptions::default().file_extension(&ext);
            if let Some(s) = &schema {
                opts = opts.schema(s);
            }
            ctx.register_json(name, &path, opts).await?;
        }
        SourceFormat::Parquet => {
            let mut opts = ParquetReadOptions::default().file_extension(&ext);
            if let Some(s) = &schema {
                opts = opts.schema(s);
            }
            ctx.register_parquet(name, &path, opts).await?;
        }
    }
    Ok(())
}

/// For CSV sources with declared columns and a header: the header's names, when they differ.
pub fn csv_header_mismatch(file: &Path, source: &Source) -> std::io::Result<Option<Vec<String>>> {
    use std::io::BufRead;
    let Some(columns) = &source.columns else {
        return Ok(None);
    };
    if source.format != SourceFormat::Csv || !source.header {
        return Ok(None);
    }
    let mut line = String::new();
    std::io::BufReader::new(std::fs::File::open(file)?).read_line(&mut line)?;
    let found: Vec<String> = line
        .trim_end_matches(['\r', '\n'])
        .split(source.delimiter as char)
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    let declared: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let same = found.len() == declared.len()
        && found
            .iter()
            .zip(&declared)
            .all(|(f, d)| f.eq_ignore_ascii_case(d));
    Ok((!same).then_some(found))
}

/// Where a source of `p` holds a null in `column`, which it declares
/// `nullable: false`: `input `x` (data/x.csv) holds a null `id` in data
/// row 2 (line 3)`. The source is read again with every column nullable,
/// in file order; `None` when no declared non-null source column has one.
pub async fn locate_null(p: &mesh_spec::ProductDescriptor, column: &str) -> Option<String> {
    for input in &p.inputs {
        let mesh_spec::InputKind::Source(source) = &input.kind else {
            continue;
        };
        let declared = source.columns.as_ref()?;
        if !declared
            .iter()
            .any(|c| c.name.as_str() == column && !c.nullable)
        {
            continue;
        }
        let mut relaxed = source.clone();
        if let Some(columns) = relaxed.columns.as_mut() {
            columns.iter_mut().for_each(|c| c.nullable = true);
        }
        let config = datafusion::prelude::SessionConfig::new()
            .with_target_partitions(1)
            .with_repartition_file_scans(false);
        let ctx = SessionContext::new_with_config(config);
        if register_source(&ctx, "src", &p.dir, &relaxed)
            .await
            .is_err()
        {
            continue;
        }
        let quoted = column.replace('"', "\"\"");
        let sql = format!(
            "SELECT n FROM (SELECT row_number() OVER () AS n, \"{quoted}\" AS v FROM src) WHERE v IS NULL ORDER BY n LIMIT 1"
        );
        let Ok(df) = ctx.sql(&sql).await else {
            continue;
        };
        let Ok(batches) = df.collect().await else {
            continue;
        };
        let row = batches.iter().find(|b| b.num_rows() > 0).and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                .map(|a| a.value(0))
        });
        if let Some(row) = row {
            let line = match source.format {
                SourceFormat::Csv if source.header => format!(" (line {})", row + 1),
                SourceFormat::Csv | SourceFormat::Json => format!(" (line {row})"),
                SourceFormat::Parquet => String::new(),
            };
            return Some(format!(
                "input `{}` ({}) holds a null `{column}` in data row {row}{line}, but declares the column `nullable: false`",
                input.name.as_str(),
                source.path.value
            ));
        }
    }
    None
}
