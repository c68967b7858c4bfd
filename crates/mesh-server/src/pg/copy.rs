//! `COPY (query) TO STDOUT` and `COPY table [(columns)] TO STDOUT`: a
//! query's rows in Postgres's text, CSV or binary copy format, as psql's
//! `\copy … TO 'file'` and psycopg's `cursor.copy()` ask for them.
//!
//! The query is planned and run by the same governed path as any
//! statement, and its rows are encoded as its batches arrive. Nothing is
//! copied in (the mesh is read-only) and nothing is written on the
//! server's disk.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Query,
    Statement as SqlStatement,
};
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::encoder::encode_value;
use datafusion_postgres::pgwire;
use futures::{Stream, StreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::portal::Format;
use pgwire::api::results::{
    CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, FieldInfo, Response,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;

use super::connection::{Interrupt, Session};
use super::query::PgService;
use super::{service_error, user_error};
use crate::metrics::QueryTimer;

/// A `COPY … TO STDOUT`: the rows of `query` in `format`.
#[derive(Debug, Clone)]
pub(super) struct CopyOut {
    query: Box<Query>,
    format: CopyFormat,
}

#[derive(Debug, Clone, PartialEq)]
enum CopyFormat {
    Text {
        delimiter: char,
        null: String,
    },
    Csv {
        delimiter: char,
        quote: char,
        null: String,
        header: bool,
        /// `FORCE_QUOTE`: `None` for `*`.
        force_quote: Option<Vec<String>>,
    },
    Binary,
}

/// Options as written, before the format is known.
#[derive(Default)]
struct Options {
    format: Option<String>,
    delimiter: Option<char>,
    null: Option<String>,
    header: bool,
    quote: Option<char>,
    escape: Option<char>,
    force_quote: Option<Option<Vec<String>>>,
}

fn invalid(message: String) -> PgWireError {
    user_error("22023", message, None)
}

/// What a `COPY` statement asks for; `None` for another statement.
pub(super) fn parse(ast: &SqlStatement) -> Option<PgWireResult<CopyOut>> {
    let SqlStatement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = ast
    else {
        return None;
    };
    Some(copy_out(source, *to, target, options, legacy_options))
}

fn copy_out(
    source: &CopySource,
    to: bool,
    target: &CopyTarget,
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> PgWireResult<CopyOut> {
    if !to {
        return Err(user_error(
            "25006",
            "COPY FROM writes into a table, and published products are read-only".into(),
            Some("a product's data changes only when `mesh run` publishes a release".into()),
        ));
    }
    if *target != CopyTarget::Stdout {
        return Err(user_error(
            "42501",
            "COPY to a file or program on the server is not allowed".into(),
            Some(
                "use COPY … TO STDOUT, or psql's \\copy … TO 'file', which writes on the client"
                    .into(),
            ),
        ));
    }
    let query = match source {
        CopySource::Query(q) => q.clone(),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let columns = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let text = format!("SELECT {columns} FROM {table_name}");
            let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
            datafusion::sql::sqlparser::parser::Parser::new(&dialect)
                .try_with_sql(&text)
                .and_then(|mut p| p.parse_query())
                .map_err(|e| user_error("42601", e.to_string(), None))?
        }
    };
    let mut o = Options::default();
    for option in options {
        match option {
            CopyOption::Format(f) => o.format = Some(f.value.to_ascii_lowercase()),
            CopyOption::Delimiter(c) => o.delimiter = Some(*c),
            CopyOption::Null(n) => o.null = Some(n.clone()),
            CopyOption::Header(h) => o.header = *h,
            CopyOption::Quote(c) => o.quote = Some(*c),
            CopyOption::Escape(c) => o.escape = Some(*c),
            CopyOption::ForceQuote(cols) => {
                o.force_quote = Some(Some(cols.iter().map(|c| c.value.clone()).collect()))
            }
            CopyOption::Encoding(e) => {
                let e = e.to_ascii_uppercase().replace('-', "");
                if e != "UTF8" {
                    return Err(user_error(
                        "0A000",
                        format!("COPY encodes UTF8 only, not {e}"),
                        None,
                    ));
                }
            }
            CopyOption::Freeze(_) | CopyOption::ForceNotNull(_) | CopyOption::ForceNull(_) => {
                return Err(invalid(format!(
                    "COPY option {option} is available only in COPY FROM"
                )));
            }
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => o.format = Some("binary".into()),
            CopyLegacyOption::Delimiter(c) => o.delimiter = Some(*c),
            CopyLegacyOption::Null(n) => o.null = Some(n.clone()),
            CopyLegacyOption::Header => o.header = true,
            CopyLegacyOption::Csv(csv) => {
                o.format = Some("csv".into());
                for c in csv {
                    match c {
                        CopyLegacyCsvOption::Header => o.header = true,
                        CopyLegacyCsvOption::Quote(q) => o.quote = Some(*q),
                        CopyLegacyCsvOption::Escape(e) => o.escape = Some(*e),
                        CopyLegacyCsvOption::ForceQuote(cols) => {
                            o.force_quote = Some(if cols.is_empty() {
                                None
                            } else {
                                Some(cols.iter().map(|c| c.value.clone()).collect())
                            })
                        }
                        CopyLegacyCsvOption::ForceNotNull(_) => {
                            return Err(invalid(
                                "FORCE NOT NULL is available only in COPY FROM".into(),
                            ));
                        }
                    }
                }
            }
            other => return Err(invalid(format!("COPY option {other} is not supported"))),
        }
    }
    Ok(CopyOut {
        query,
        format: format_of(o)?,
    })
}

fn format_of(o: Options) -> PgWireResult<CopyFormat> {
    let csv_only = |set: bool, name: &str| {
        if set {
            Err(invalid(format!(
                "COPY {name} is available only in CSV mode"
            )))
        } else {
            Ok(())
        }
    };
    match o.format.as_deref().unwrap_or("text") {
        "text" => {
            csv_only(o.quote.is_some(), "QUOTE")?;
            csv_only(o.escape.is_some(), "ESCAPE")?;
            csv_only(o.force_quote.is_some(), "FORCE_QUOTE")?;
            if o.header {
                return Err(invalid(
                    "COPY HEADER is available only in CSV mode here".into(),
                ));
            }
            Ok(CopyFormat::Text {
                delimiter: o.delimiter.unwrap_or('\t'),
                null: o.null.unwrap_or_else(|| "\\N".into()),
            })
        }
        "csv" => {
            let quote = o.quote.unwrap_or('"');
            if o.escape.is_some_and(|e| e != quote) {
                return Err(user_error(
                    "0A000",
                    "COPY ESCAPE other than the QUOTE character is not supported".into(),
                    Some("leave ESCAPE out: quotes inside values are doubled".into()),
                ));
            }
            Ok(CopyFormat::Csv {
                delimiter: o.delimiter.unwrap_or(','),
                quote,
                null: o.null.unwrap_or_default(),
                header: o.header,
                force_quote: o.force_quote.map_or(Some(Vec::new()), |f| f),
            })
        }
        "binary" => {
            for (set, name) in [
                (o.delimiter.is_some(), "DELIMITER"),
                (o.null.is_some(), "NULL"),
                (o.header, "HEADER"),
                (o.quote.is_some(), "QUOTE"),
                (o.escape.is_some(), "ESCAPE"),
                (o.force_quote.is_some(), "FORCE_QUOTE"),
            ] {
                if set {
                    return Err(invalid(format!("cannot specify {name} in BINARY mode")));
                }
            }
            Ok(CopyFormat::Binary)
        }
        other => Err(invalid(format!(
            "COPY format \"{other}\" not recognized; use text, csv or binary"
        ))),
    }
}

/// The PGCOPY signature, flags and header extension length: what a
/// binary copy starts with, even when it has no rows.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

impl CopyFormat {
    fn encoder(&self, fields: &Arc<Vec<FieldInfo>>) -> CopyEncoder {
        match self {
            CopyFormat::Text { delimiter, null } => CopyEncoder::new_text(
                fields.clone(),
                CopyTextOptions {
                    delimiter: delimiter.to_string().into(),
                    null_string: null.as_str().into(),
                },
            ),
            CopyFormat::Csv {
                delimiter,
                quote,
                null,
                force_quote,
                ..
            } => CopyEncoder::new_csv(
                fields.clone(),
                CopyCsvOptions {
                    delimiter: delimiter.to_string().into(),
                    quote: quote.to_string().into(),
                    escape: quote.to_string().into(),
                    null_string: null.as_str().into(),
                    force_quote: match force_quote {
                        None => (0..fields.len()).collect(),
                        Some(names) => fields
                            .iter()
                            .enumerate()
                            .filter(|(_, f)| names.iter().any(|n| n == f.name()))
                            .map(|(i, _)| i)
                            .collect(),
                    },
                },
            ),
            CopyFormat::Binary => CopyEncoder::new_binary(fields.clone()),
        }
    }

    /// The CSV header line, when asked for.
    fn header(&self, fields: &[FieldInfo]) -> Option<Bytes> {
        let CopyFormat::Csv {
            delimiter,
            quote,
            header: true,
            ..
        } = self
        else {
            return None;
        };
        let names: Vec<String> = fields
            .iter()
            .map(|f| {
                let name = f.name();
                if name.contains([*delimiter, *quote, '\n', '\r']) {
                    let doubled = name.replace(*quote, &format!("{quote}{quote}"));
                    format!("{quote}{doubled}{quote}")
                } else {
                    name.to_string()
                }
            })
            .collect();
        let line = names.join(&delimiter.to_string()) + "\n";
        Some(Bytes::from(line))
    }
}

fn encode_batch(
    encoder: &mut CopyEncoder,
    fields: &[FieldInfo],
    batch: &RecordBatch,
) -> PgWireResult<Vec<CopyData>> {
    let schema = batch.schema();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (col, array) in batch.columns().iter().enumerate() {
            encode_value(encoder, array, row, schema.field(col), &fields[col])?;
        }
        out.push(encoder.take_copy());
    }
    Ok(out)
}

struct Copying {
    stream: mesh_service::QueryStream,
    encoder: CopyEncoder,
    fields: Arc<Vec<FieldInfo>>,
    interrupt: Interrupt,
    timer: QueryTimer,
    /// The CSV header line, sent in the first row's message: clients are
    /// told the number of messages as the number of rows.
    prefix: Option<Bytes>,
    /// Binary: the encoder writes the PGCOPY header with the first row;
    /// without rows it is sent alone.
    binary_without_rows: bool,
}

/// The copy data of `stream`'s rows, until it ends or is interrupted.
fn copy_data(state: Copying) -> impl Stream<Item = PgWireResult<CopyData>> + Send + 'static {
    stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        let next = tokio::select! {
            next = s.stream.next() => Some(next),
            _ = s.interrupt.token.cancelled() => None,
        };
        let Some(next) = next else {
            return Some((stream::iter(vec![Err(s.interrupt.error())]), None));
        };
        match next {
            None => {
                s.timer.finish(Ok(()));
                // No rows: the header alone (counted as one row).
                let header = if s.binary_without_rows {
                    Some(Bytes::from_static(BINARY_HEADER))
                } else {
                    s.prefix.take()
                };
                let header: Vec<PgWireResult<CopyData>> =
                    header.map(|h| Ok(CopyData::new(h))).into_iter().collect();
                Some((stream::iter(header), None))
            }
            Some(Ok(batch)) => {
                let mut data = match encode_batch(&mut s.encoder, &s.fields, &batch) {
                    Ok(data) => data,
                    Err(e) => return Some((stream::iter(vec![Err(e)]), None)),
                };
                s.binary_without_rows &= data.is_empty();
                if let Some(first) = data.first_mut()
                    && let Some(prefix) = s.prefix.take()
                {
                    let mut joined = bytes::BytesMut::from(prefix.as_ref());
                    joined.extend_from_slice(&first.data);
                    *first = CopyData::new(joined.freeze());
                }
                Some((
                    stream::iter(data.into_iter().map(Ok).collect::<Vec<_>>()),
                    Some(s),
                ))
            }
            Some(Err(e)) => {
                s.timer.finish(Err(&e));
                Some((stream::iter(vec![Err(service_error(e))]), None))
            }
        }
    })
    .flatten()
}

impl PgService {
    /// Answers a `COPY … TO STDOUT`.
    pub(super) async fn copy<C>(
        &self,
        client: &C,
        session: &Session,
        copy: CopyOut,
        params: Option<ParamValues>,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Send + Sync + ?Sized,
    {
        let ast = SqlStatement::Query(copy.query);
        let (stream, interrupt, timer) = self.start(client, session, &ast, params).await?;
        let fields = Arc::new(arrow_schema_to_pg_fields(
            &stream.schema,
            &Format::UnifiedText,
            None,
        )?);
        let columns = fields.len();
        let binary = copy.format == CopyFormat::Binary;
        let data = copy_data(Copying {
            stream,
            encoder: copy.format.encoder(&fields),
            prefix: copy.format.header(&fields),
            fields,
            interrupt,
            timer,
            binary_without_rows: binary,
        });
        Ok(Response::CopyOut(CopyResponse::new(
            i8::from(binary),
            columns,
            data,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(sql: &str) -> PgWireResult<CopyOut> {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        let ast = datafusion::sql::sqlparser::parser::Parser::parse_sql(&dialect, sql).unwrap();
        parse(&ast[0]).unwrap()
    }

    fn sqlstate(e: PgWireError) -> String {
        match e {
            PgWireError::UserError(info) => info.code,
            other => other.to_string(),
        }
    }

    #[test]
    fn formats_and_their_options() {
        let text = parsed("COPY (SELECT 1) TO STDOUT").unwrap();
        assert_eq!(
            text.format,
            CopyFormat::Text {
                delimiter: '\t',
                null: "\\N".into()
            }
        );
        let csv =
            parsed("COPY t (a, b) TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';')").unwrap();
        assert!(matches!(
            csv.format,
            CopyFormat::Csv {
                delimiter: ';',
                header: true,
                ..
            }
        ));
        assert_eq!(csv.query.to_string(), "SELECT a, b FROM t");
        let legacy = parsed("COPY t TO STDOUT WITH CSV HEADER").unwrap();
        assert!(matches!(
            legacy.format,
            CopyFormat::Csv { header: true, .. }
        ));
        let binary = parsed("COPY (SELECT 1) TO STDOUT (FORMAT binary)").unwrap();
        assert_eq!(binary.format, CopyFormat::Binary);
    }

    #[test]
    fn writes_and_server_files_are_refused() {
        let e = |sql| sqlstate(parsed(sql).unwrap_err());
        assert_eq!(e("COPY t FROM STDIN"), "25006");
        assert_eq!(e("COPY t TO '/etc/passwd'"), "42501");
        assert_eq!(e("COPY t TO STDOUT (FORMAT parquet)"), "22023");
        assert_eq!(e("COPY t TO STDOUT (FORMAT binary, HEADER)"), "22023");
    }
}
