//! Contract types as Arrow types, and which produced types a contract accepts.
//!
//! Rule: a produced column matches a declared one when it has the same type,
//! or a type that converts to it without loss (an `int` into a `bigint`, a
//! `float` into a `double`, a decimal with the same scale and a precision
//! that fits, any string or timestamp encoding). The value is cast when
//! written. Anything else needs an explicit `CAST` in the SQL.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use mesh_spec::{Column, ColumnType, StructField};

/// The Arrow type a declared column is stored as.
pub fn arrow_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::TinyInt => DataType::Int8,
        ColumnType::SmallInt => DataType::Int16,
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Float => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(*precision, *scale),
        ColumnType::String => DataType::Utf8,
        ColumnType::Binary => DataType::Binary,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        // Delta's own names for the list element and the map entries, so a
        // batch cast to this type and a scan of the Delta table agree.
        ColumnType::List(inner) => {
            DataType::List(Arc::new(Field::new(LIST_ELEMENT, arrow_type(inner), true)))
        }
        ColumnType::Map(k, v) => DataType::Map(
            Arc::new(Field::new(
                MAP_ENTRIES,
                DataType::Struct(Fields::from(vec![
                    Field::new(MAP_KEY, arrow_type(k), false),
                    Field::new(MAP_VALUE, arrow_type(v), true),
                ])),
                false,
            )),
            false,
        ),
        ColumnType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Field::new(&f.name, arrow_type(&f.ty), f.nullable))
                .collect::<Fields>(),
        ),
    }
}

const LIST_ELEMENT: &str = "element";
const MAP_ENTRIES: &str = "key_value";
const MAP_KEY: &str = "key";
const MAP_VALUE: &str = "value";

/// The Arrow schema of declared columns, in declared order.
pub fn arrow_schema(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name.as_str(), arrow_type(&c.ty.value), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

/// The same, from (name, type, nullable) triples.
pub fn arrow_schema_of<'a>(
    columns: impl IntoIterator<Item = (&'a str, ColumnType, bool)>,
) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .into_iter()
            .map(|(n, t, null)| Field::new(n, arrow_type(&t), null))
            .collect::<Vec<_>>(),
    ))
}

/// The declared schema of a deployed output (a column whose recorded type
/// no longer parses reads as a string).
pub fn output_schema(o: &mesh_catalog::OutputRecord) -> SchemaRef {
    arrow_schema_of(o.columns.iter().map(|c| {
        (
            c.name.as_str(),
            c.ty.parse::<ColumnType>().unwrap_or(ColumnType::String),
            c.nullable,
        )
    }))
}

/// Field and schema metadata key holding the contract's description of a
/// column or a table.
pub const DESCRIPTION: &str = "description";
/// Schema metadata key holding the contract's primary key: column names
/// separated by commas, in key order.
pub const PRIMARY_KEY: &str = "meshwork.primary_key";

/// [`output_schema`] carrying the contract's documentation as metadata:
/// each column's description ([`DESCRIPTION`]), and the table's
/// description and primary key ([`PRIMARY_KEY`]).
pub fn documented_schema(
    o: &mesh_catalog::OutputRecord,
    declared: Option<&mesh_spec::Output>,
    product_purpose: Option<&str>,
) -> SchemaRef {
    let plain = output_schema(o);
    let Some(declared) = declared else {
        return plain;
    };
    let fields: Vec<Field> = plain
        .fields()
        .iter()
        .map(|f| {
            let description = declared
                .column(f.name())
                .and_then(|c| c.description.clone());
            match description {
                Some(d) => f
                    .as_ref()
                    .clone()
                    .with_metadata([(DESCRIPTION.to_string(), d)].into()),
                None => f.as_ref().clone(),
            }
        })
        .collect();
    let mut metadata = std::collections::HashMap::new();
    if let Some(d) = declared.description.as_deref().or(product_purpose) {
        metadata.insert(DESCRIPTION.to_string(), d.to_string());
    }
    if !declared.primary_key.is_empty() {
        let key: Vec<&str> = declared.primary_key.iter().map(|c| c.as_str()).collect();
        metadata.insert(PRIMARY_KEY.to_string(), key.join(","));
    }
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// The contract type closest to an Arrow type, for messages and inferred schemas.
pub fn contract_type(dt: &DataType) -> Option<ColumnType> {
    Some(match dt {
        DataType::Boolean => ColumnType::Boolean,
        DataType::Int8 => ColumnType::TinyInt,
        DataType::Int16 | DataType::UInt8 => ColumnType::SmallInt,
        DataType::Int32 | DataType::UInt16 => ColumnType::Int,
        DataType::Int64 | DataType::UInt32 => ColumnType::BigInt,
        DataType::Float16 | DataType::Float32 => ColumnType::Float,
        DataType::Float64 => ColumnType::Double,
        DataType::Decimal128(p, s) => ColumnType::Decimal {
            precision: *p,
            scale: *s,
        },
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::String,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ColumnType::Binary,
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Timestamp(_, _) => ColumnType::Timestamp,
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            ColumnType::List(Box::new(contract_type(f.data_type())?))
        }
        DataType::FixedSizeList(f, _) => ColumnType::List(Box::new(contract_type(f.data_type())?)),
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return None;
            };
            let [k, v] = &kv.iter().collect::<Vec<_>>()[..] else {
                return None;
            };
            ColumnType::Map(
                Box::new(contract_type(k.data_type())?),
                Box::new(contract_type(v.data_type())?),
            )
        }
        DataType::Struct(fields) => ColumnType::Struct(
            fields
                .iter()
                .map(|f| {
                    Some(StructField {
                        name: f.name().clone(),
                        ty: contract_type(f.data_type())?,
                        nullable: f.is_nullable(),
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

/// Whether a produced Arrow type may be stored in a declared column (see module docs).
///
/// Nested types are accepted element by element. A produced struct must
/// have exactly the declared fields (in any order; the cast matches them by
/// name), and a field declared `not null` must not be produced nullable.
pub fn accepts(declared: &ColumnType, produced: &DataType) -> bool {
    use ColumnType as C;
    use DataType as D;
    match (declared, produced) {
        (_, D::Null) => true,
        (C::Boolean, D::Boolean) => true,
        (C::TinyInt, D::Int8) => true,
        (C::SmallInt, D::Int8 | D::Int16 | D::UInt8) => true,
        (C::Int, D::Int8 | D::Int16 | D::Int32 | D::UInt8 | D::UInt16) => true,
        (
            C::BigInt,
            D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32,
        ) => true,
        (C::Float, D::Float16 | D::Float32) => true,
        (C::Double, D::Float16 | D::Float32 | D::Float64) => true,
        (C::Decimal { precision, scale }, D::Decimal128(p, s)) => s == scale && p <= precision,
        (C::Decimal { precision, scale }, D::Int8 | D::Int16 | D::Int32 | D::Int64) => {
            let digits = match produced {
                D::Int8 => 3,
                D::Int16 => 5,
                D::Int32 => 10,
                _ => 19,
            };
            *precision as i16 - *scale as i16 >= digits
        }
        (C::String, D::Utf8 | D::LargeUtf8 | D::Utf8View) => true,
        (C::Binary, D::Binary | D::LargeBinary | D::BinaryView) => true,
        (C::Date, D::Date32 | D::Date64) => true,
        (C::Timestamp, D::Timestamp(_, _)) => true,
        (C::List(inner), D::List(f) | D::LargeList(f) | D::FixedSizeList(f, _)) => {
            accepts(inner, f.data_type())
        }
        (C::Map(k, v), D::Map(entries, _)) => match entries.data_type() {
            D::Struct(kv) if kv.len() == 2 => {
                accepts(k, kv[0].data_type()) && accepts(v, kv[1].data_type())
            }
            _ => false,
        },
        (C::Struct(fields), D::Struct(produced)) => {
            fields.len() == produced.len()
                && fields.iter().all(|f| {
                    produced.iter().any(|p| {
                        p.name() == &f.name
                            && (f.nullable || !p.is_nullable())
                            && accepts(&f.ty, p.data_type())
                    })
                })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_is_accepted_and_narrowing_is_not() {
        assert!(accepts(&ColumnType::BigInt, &DataType::Int32));
        assert!(!accepts(&ColumnType::Int, &DataType::Int64));
        assert!(accepts(&ColumnType::String, &DataType::Utf8View));
        let dec = ColumnType::Decimal {
            precision: 12,
            scale: 2,
        };
        assert!(accepts(&dec, &DataType::Decimal128(10, 2)));
        assert!(!accepts(&dec, &DataType::Decimal128(22, 2)));
        assert!(!accepts(&dec, &DataType::Decimal128(12, 3)));
        assert!(!accepts(&ColumnType::Date, &DataType::Utf8));
        assert!(accepts(
            &ColumnType::Timestamp,
            &DataType::Timestamp(TimeUnit::Nanosecond, None)
        ));
    }

    #[test]
    fn nested_types_round_trip_and_accept_by_field_name() {
        let declared: ColumnType =
            "struct<zip int not null, tags list<string>, attrs map<string, double>>"
                .parse()
                .unwrap();
        let arrow = arrow_type(&declared);
        assert_eq!(contract_type(&arrow), Some(declared.clone()));
        assert!(accepts(&declared, &arrow));
        // Fields in another order, produced from narrower types: accepted.
        let produced = DataType::Struct(Fields::from(vec![
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true))),
                true,
            ),
            Field::new("zip", DataType::Int16, false),
            Field::new(
                "attrs",
                arrow_type(&"map<string, float>".parse().unwrap()),
                true,
            ),
        ]));
        assert!(accepts(&declared, &produced));
        // A nullable zip where `not null` is declared, a missing field, a wider int.
        let nullable_zip = DataType::Struct(Fields::from(vec![
            Field::new("zip", DataType::Int32, true),
            Field::new("tags", arrow_type(&"list<string>".parse().unwrap()), true),
            Field::new(
                "attrs",
                arrow_type(&"map<string, double>".parse().unwrap()),
                true,
            ),
        ]));
        assert!(!accepts(&declared, &nullable_zip));
        let s: ColumnType = "struct<a int>".parse().unwrap();
        assert!(!accepts(
            &s,
            &arrow_type(&"struct<a bigint>".parse().unwrap())
        ));
        assert!(!accepts(
            &s,
            &arrow_type(&"struct<a int, b int>".parse().unwrap())
        ));
    }
}
