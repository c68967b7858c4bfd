//! Column types of the contract language.
//!
//! These are the only types a descriptor can declare. Each maps to exactly
//! one Delta Lake primitive type and one Arrow type (the mapping to Arrow
//! lives in `mesh-query`, which owns the Arrow dependency).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A declared column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ColumnType {
    Boolean,
    TinyInt,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Decimal {
        precision: u8,
        scale: i8,
    },
    String,
    Binary,
    Date,
    /// Microsecond precision, UTC.
    Timestamp,
}

/// The names a user may write, for "did you mean" hints.
pub const TYPE_NAMES: &[&str] = &[
    "boolean",
    "tinyint",
    "smallint",
    "int",
    "bigint",
    "float",
    "double",
    "decimal(p,s)",
    "string",
    "binary",
    "date",
    "timestamp",
];

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::TinyInt => f.write_str("tinyint"),
            ColumnType::SmallInt => f.write_str("smallint"),
            ColumnType::Int => f.write_str("int"),
            ColumnType::BigInt => f.write_str("bigint"),
            ColumnType::Float => f.write_str("float"),
            ColumnType::Double => f.write_str("double"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
            ColumnType::String => f.write_str("string"),
            ColumnType::Binary => f.write_str("binary"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Timestamp => f.write_str("timestamp"),
        }
    }
}

impl FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let t = match lower.as_str() {
            "boolean" | "bool" => ColumnType::Boolean,
            "tinyint" | "byte" | "int8" => ColumnType::TinyInt,
            "smallint" | "short" | "int16" => ColumnType::SmallInt,
            "int" | "integer" | "int32" => ColumnType::Int,
            "bigint" | "long" | "int64" => ColumnType::BigInt,
            "float" | "real" | "float32" => ColumnType::Float,
            "double" | "float64" => ColumnType::Double,
            "string" | "text" | "varchar" => ColumnType::String,
            "binary" | "bytes" => ColumnType::Binary,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            other => {
                let Some(args) = other
                    .strip_prefix("decimal(")
                    .and_then(|r| r.strip_suffix(')'))
                else {
                    return Err(format!("unknown type `{s}`"));
                };
                let (p, sc) = args.split_once(',').ok_or_else(|| {
                    format!("`{s}` needs a precision and a scale, like decimal(12,2)")
                })?;
                let precision: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("precision in `{s}` is not a number"))?;
                let scale: i8 = sc
                    .trim()
                    .parse()
                    .map_err(|_| format!("scale in `{s}` is not a number"))?;
                if !(1..=38).contains(&precision) {
                    return Err(format!("precision in `{s}` must be between 1 and 38"));
                }
                if scale < 0 || scale as u8 > precision {
                    return Err(format!(
                        "scale in `{s}` must be between 0 and the precision"
                    ));
                }
                ColumnType::Decimal { precision, scale }
            }
        };
        Ok(t)
    }
}

impl TryFrom<String> for ColumnType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ColumnType> for String {
    fn from(t: ColumnType) -> String {
        t.to_string()
    }
}

impl ColumnType {
    /// Whether values of this type are ordered numbers or dates, so a `range` check applies.
    pub fn is_orderable(&self) -> bool {
        !matches!(self, ColumnType::Boolean | ColumnType::Binary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_names_and_aliases() {
        assert_eq!("bigint".parse::<ColumnType>(), Ok(ColumnType::BigInt));
        assert_eq!("LONG".parse::<ColumnType>(), Ok(ColumnType::BigInt));
        assert_eq!(
            "decimal(12, 2)".parse::<ColumnType>(),
            Ok(ColumnType::Decimal {
                precision: 12,
                scale: 2
            })
        );
        assert!("decimal(40,2)".parse::<ColumnType>().is_err());
        assert!("decimal(4,5)".parse::<ColumnType>().is_err());
        assert!("strin".parse::<ColumnType>().is_err());
        for t in ["boolean", "int", "decimal(12,2)", "timestamp"] {
            assert_eq!(t.parse::<ColumnType>().unwrap().to_string(), t);
        }
    }
}
