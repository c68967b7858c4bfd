//! Results as text for front ends whose format has no nested values.
//!
//! CSV (and later the text form of the Postgres protocol) holds one string
//! per cell. A `list`, `map` or `struct` value is written as its JSON text,
//! the same JSON the `--format json` output holds for it; a null stays null.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::LineDelimited;
use datafusion::arrow::record_batch::RecordBatch;

fn is_nested(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::ListView(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..)
    )
}

/// The batch with every nested column replaced by a string column of JSON
/// text. A batch without nested columns is returned as it is.
pub fn nested_as_json(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| is_nested(f.data_type())) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if is_nested(field.data_type()) {
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(json_text(column)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// Each value of a nested column as JSON text. The column is encoded by
/// Arrow's JSON writer as one-key objects, one per line, then unwrapped.
fn json_text(column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let one = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "v",
            column.data_type().clone(),
            true,
        )])),
        vec![column.clone()],
    )?;
    let mut buf = Vec::new();
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, LineDelimited>(&mut buf);
    writer.write(&one)?;
    writer.finish()?;
    drop(writer);
    let mut out = StringBuilder::with_capacity(column.len(), buf.len());
    for (row, line) in buf
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if column.is_null(row) {
            out.append_null();
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_slice(line).map_err(|e| ArrowError::JsonError(e.to_string()))?;
        match value.get("v") {
            Some(v) => out.append_value(v.to_string()),
            None => out.append_null(),
        }
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, ListArray, StringArray, StructArray};
    use datafusion::arrow::datatypes::Int32Type;

    #[test]
    fn nested_cells_become_json_and_nulls_stay_null() {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
        ]);
        let st = StructArray::from(vec![(
            Arc::new(Field::new("a", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![Some(7), None])) as ArrayRef,
        )]);
        let batch = RecordBatch::try_from_iter(vec![
            ("l", Arc::new(list) as ArrayRef),
            ("s", Arc::new(st) as ArrayRef),
            ("n", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
        ])
        .unwrap();
        let out = nested_as_json(&batch).unwrap();
        let text = |i: usize| {
            out.column(i)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect::<Vec<_>>()
        };
        assert_eq!(text(0), [Some("[1,null]".to_string()), None]);
        assert_eq!(
            text(1),
            [Some(r#"{"a":7}"#.to_string()), Some(r#"{"a":null}"#.into())]
        );
        assert_eq!(out.column(2).data_type(), &DataType::Int32);
    }
}

/// `dt` with view types replaced by their classic layouts (`Utf8View` by
/// `Utf8`, `BinaryView` by `Binary`), nested types included.
fn plain_type(dt: &DataType) -> DataType {
    let field =
        |f: &Arc<Field>| Arc::new(f.as_ref().clone().with_data_type(plain_type(f.data_type())));
    match dt {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(field(f)),
        DataType::LargeList(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        other => other.clone(),
    }
}

/// The schema results travel in over Arrow IPC (Flight SQL, REST): view
/// types become their classic layouts. Clients without view support can
/// read it, and a sliced view array, whose IPC form carries all of its
/// data buffers whatever the slice, is never sent piece by piece.
pub fn wire_schema(schema: &Schema) -> Arc<Schema> {
    Arc::new(Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_data_type(plain_type(f.data_type())))
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// `batch` in `wire` (its [`wire_schema`]): view columns are cast, other
/// columns are shared as they are.
pub fn to_wire(batch: &RecordBatch, wire: &Arc<Schema>) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(wire.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                datafusion::arrow::compute::cast(c, f.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, ArrowError>>()?;
    RecordBatch::try_new(wire.clone(), columns)
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use datafusion::arrow::array::{ListBuilder, StringViewBuilder};

    #[test]
    fn view_columns_travel_as_classic_strings_nested_or_not() {
        let mut names = StringViewBuilder::new();
        names.append_value("a fairly long string that is not inlined in its view");
        names.append_null();
        let mut tags = ListBuilder::new(StringViewBuilder::new());
        tags.values().append_value("x");
        tags.append(true);
        tags.append(false);
        let batch = RecordBatch::try_from_iter([
            ("name", Arc::new(names.finish()) as ArrayRef),
            ("tags", Arc::new(tags.finish()) as ArrayRef),
        ])
        .unwrap();
        let wire = wire_schema(&batch.schema());
        assert_eq!(wire.field(0).data_type(), &DataType::Utf8);
        assert!(
            matches!(wire.field(1).data_type(), DataType::List(f) if f.data_type() == &DataType::Utf8)
        );
        let sent = to_wire(&batch.slice(0, 2), &wire).unwrap();
        assert_eq!(sent.schema(), wire);
        assert_eq!(sent.num_rows(), 2);
        assert!(sent.column(0).is_null(1));
    }
}
