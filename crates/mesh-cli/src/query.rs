//! `mesh query`: SQL over published products, on the local project or a
//! server, printed as a table, CSV or JSON.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use mesh_service::arrow::array::RecordBatch;
use mesh_service::arrow::datatypes::SchemaRef;
use mesh_service::{Caller, Mesh};

use crate::output::table;
use crate::remote;

#[derive(Args)]
pub struct QueryArgs {
    sql: String,
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    format: QueryFormat,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum QueryFormat {
    Table,
    Json,
    Csv,
}

/// Runs the statement on the local project.
pub async fn local(mesh: &Mesh, caller: &Caller, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let mut stream = mesh.query_stream(caller, &args.sql).await?;
    print_query(&mut stream, args.format).await
}

/// Asks a server.
pub async fn remote(client: &remote::Remote, args: QueryArgs) -> anyhow::Result<ExitCode> {
    let mut rows = client.query(&args.sql).await?;
    print_query(&mut rows, args.format).await
}

/// Rows arriving batch by batch, from the local engine or a server.
trait Batches {
    fn schema(&self) -> SchemaRef;
    fn warnings(&self) -> &[String];
    async fn next_batch(&mut self) -> Option<anyhow::Result<RecordBatch>>;
}

impl Batches for mesh_service::QueryStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    async fn next_batch(&mut self) -> Option<anyhow::Result<RecordBatch>> {
        self.next().await.map(|b| b.map_err(Into::into))
    }
}

impl Batches for remote::RemoteRows {
    fn schema(&self) -> SchemaRef {
        remote::RemoteRows::schema(self)
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    async fn next_batch(&mut self) -> Option<anyhow::Result<RecordBatch>> {
        self.next().await
    }
}
/// Prints a query's answer in `format`; CSV and JSON stream, a table
/// needs every row first to size its columns.
async fn print_query(rows: &mut impl Batches, format: QueryFormat) -> anyhow::Result<ExitCode> {
    for w in rows.warnings() {
        eprintln!("warning: {w}");
    }
    if format != QueryFormat::Table {
        return match print_stream(rows, format == QueryFormat::Csv).await {
            Err(e) if is_broken_pipe(&e) => Ok(ExitCode::from(141)),
            other => other.map(|()| ExitCode::SUCCESS),
        };
    }
    let mut batches = Vec::new();
    while let Some(batch) = rows.next_batch().await {
        batches.push(batch?);
    }
    let result = mesh_service::QueryResult {
        schema: rows.schema(),
        batches,
        warnings: Vec::new(),
    };
    let (headers, body) = result.to_strings()?;
    println!("{}", table(headers, body));
    eprintln!("{} row(s)", result.row_count());
    Ok(ExitCode::SUCCESS)
}

/// Writes a query's rows to stdout as they arrive: CSV with a header, or
/// one JSON array of row objects.
async fn print_stream(stream: &mut impl Batches, csv: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if csv {
        let mut writer = datafusion_csv_writer(&mut out);
        let mut wrote = false;
        while let Some(batch) = stream.next_batch().await {
            // CSV cells are text: nested values are written as JSON.
            writer.write(&mesh_service::nested_as_json(&batch?)?)?;
            wrote = true;
        }
        drop(writer);
        if !wrote {
            let schema = stream.schema();
            let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            writeln!(out, "{}", header.join(","))?;
        }
    } else {
        // The writer opens the array at the first row and closes it in
        // `finish`, which writes `[]` when there were no rows.
        let mut writer = mesh_service::arrow::json::ArrayWriter::new(&mut out);
        while let Some(batch) = stream.next_batch().await {
            writer.write(&batch?)?;
        }
        writer.finish()?;
        drop(writer);
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

fn datafusion_csv_writer<W: std::io::Write>(w: W) -> mesh_service::arrow::csv::Writer<W> {
    mesh_service::arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(w)
}

/// Whether an error is a closed stdout (`mesh query … | head`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.to_string().contains("Broken pipe")
    })
}
