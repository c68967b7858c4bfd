//! Column types of the contract language.
//!
//! Primitive types map to one Delta Lake primitive type and one Arrow type
//! each (the mapping to Arrow lives in `mesh-query`, which owns the Arrow
//! dependency). Nested types follow Delta's `array`, `map` and `struct`:
//!
//! - `list<T>` (alias `array<T>`): elements may be null;
//! - `map<K, V>`: keys are never null, values may be;
//! - `struct<name T, other T not null>`: fields are nullable unless marked
//!   `not null`; a `:` after the field name is accepted (`struct<a: int>`).
//!
//! The text form is SQL-like on purpose: `struct<zip int>` needs no quoting
//! in YAML, while `struct<zip: int>` does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A declared column type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// A list whose elements may be null.
    List(Box<ColumnType>),
    /// Keys are never null; values may be.
    Map(Box<ColumnType>, Box<ColumnType>),
    Struct(Vec<StructField>),
}

/// One named field of a `struct` type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructField {
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
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
    "list<T>",
    "map<K, V>",
    "struct<name T, ...>",
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
            ColumnType::List(t) => write!(f, "list<{t}>"),
            ColumnType::Map(k, v) => write!(f, "map<{k}, {v}>"),
            ColumnType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} {}", field.name, field.ty)?;
                    if !field.nullable {
                        f.write_str(" not null")?;
                    }
                }
                f.write_str(">")
            }
        }
    }
}

impl FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut p = TypeParser { src: s, pos: 0 };
        let t = p.ty(0)?;
        p.skip_ws();
        if p.pos < s.len() {
            return Err(p.unexpected("the end of the type"));
        }
        Ok(t)
    }
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 32;

/// A recursive-descent parser over the type text. Errors name the
/// character offset, so a long nested type points at its mistake.
struct TypeParser<'a> {
    src: &'a str,
    pos: usize,
}

impl TypeParser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{c}`")))
        }
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self.rest().chars().next() {
            None => format!("`{}` ends early: expected {wanted}", self.src.trim()),
            Some(c) => format!(
                "unexpected `{c}` at character {} of `{}`: expected {wanted}",
                self.pos + 1,
                self.src.trim()
            ),
        }
    }

    /// A word: letters, digits and `_`.
    fn word(&mut self) -> &str {
        self.skip_ws();
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        let start = self.pos;
        self.pos += len;
        &self.src[start..self.pos]
    }

    fn ty(&mut self, depth: usize) -> Result<ColumnType, String> {
        if depth > MAX_DEPTH {
            return Err(format!("type nests deeper than {MAX_DEPTH} levels"));
        }
        let start = self.pos;
        let word = self.word().to_ascii_lowercase();
        if word.is_empty() {
            return Err(self.unexpected("a type"));
        }
        let t = match word.as_str() {
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
            "decimal" => self.decimal(start)?,
            "list" | "array" => {
                self.expect('<')?;
                let inner = self.ty(depth + 1)?;
                self.expect('>')?;
                ColumnType::List(Box::new(inner))
            }
            "map" => {
                self.expect('<')?;
                let k = self.ty(depth + 1)?;
                self.expect(',')?;
                let v = self.ty(depth + 1)?;
                self.expect('>')?;
                ColumnType::Map(Box::new(k), Box::new(v))
            }
            "struct" => self.struct_fields(depth)?,
            _ => {
                let shown = if self.src.trim().len() == word.len() {
                    self.src.trim().to_string()
                } else {
                    word
                };
                return Err(format!("unknown type `{shown}`"));
            }
        };
        Ok(t)
    }

    fn decimal(&mut self, start: usize) -> Result<ColumnType, String> {
        let whole = |p: &Self| {
            let end = p.src[p.pos..]
                .find(')')
                .map_or(p.src.len(), |i| p.pos + i + 1);
            p.src[start..end].trim().to_string()
        };
        if !self.eat('(') {
            return Err(format!(
                "`{}` needs a precision and a scale, like decimal(12,2)",
                whole(self)
            ));
        }
        let text = whole(self);
        let p = self.word().to_string();
        if !self.eat(',') {
            return Err(format!(
                "`{text}` needs a precision and a scale, like decimal(12,2)"
            ));
        }
        let sc = self.signed_word();
        if !self.eat(')') {
            return Err(self.unexpected("`)`"));
        }
        let precision: u8 = p
            .parse()
            .map_err(|_| format!("precision in `{text}` is not a number"))?;
        let scale: i8 = sc
            .parse()
            .map_err(|_| format!("scale in `{text}` is not a number"))?;
        if !(1..=38).contains(&precision) {
            return Err(format!("precision in `{text}` must be between 1 and 38"));
        }
        if scale < 0 || scale as u8 > precision {
            return Err(format!(
                "scale in `{text}` must be between 0 and the precision"
            ));
        }
        Ok(ColumnType::Decimal { precision, scale })
    }

    fn signed_word(&mut self) -> String {
        self.skip_ws();
        let neg = self.rest().starts_with('-');
        if neg {
            self.pos += 1;
        }
        let w = self.word();
        if neg { format!("-{w}") } else { w.to_string() }
    }

    fn struct_fields(&mut self, depth: usize) -> Result<ColumnType, String> {
        self.expect('<')?;
        let mut fields: Vec<StructField> = Vec::new();
        loop {
            let name = self.word().to_string();
            if name.is_empty() {
                return Err(self.unexpected("a field name"));
            }
            if name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!(
                    "field name `{name}` in `{}` must start with a letter or `_`",
                    self.src.trim()
                ));
            }
            if fields.iter().any(|f| f.name == name) {
                return Err(format!(
                    "field `{name}` appears twice in `{}`",
                    self.src.trim()
                ));
            }
            self.eat(':');
            let ty = self.ty(depth + 1)?;
            let save = self.pos;
            let nullable = if self.word().eq_ignore_ascii_case("not") {
                if !self.word().eq_ignore_ascii_case("null") {
                    return Err(self.unexpected("`null` after `not`"));
                }
                false
            } else {
                self.pos = save;
                true
            };
            fields.push(StructField { name, ty, nullable });
            if self.eat('>') {
                break;
            }
            self.expect(',')?;
        }
        Ok(ColumnType::Struct(fields))
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
        !matches!(
            self,
            ColumnType::Boolean
                | ColumnType::Binary
                | ColumnType::List(_)
                | ColumnType::Map(..)
                | ColumnType::Struct(_)
        )
    }

    /// Whether this is a `list`, `map` or `struct`.
    pub fn is_nested(&self) -> bool {
        matches!(
            self,
            ColumnType::List(_) | ColumnType::Map(..) | ColumnType::Struct(_)
        )
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

    #[test]
    fn parses_nested_types_and_prints_them_canonically() {
        let t: ColumnType = "struct<street: string, zip INT not null, tags array<string>, attrs map<string,decimal(12, 2)>>"
            .parse()
            .unwrap();
        assert_eq!(
            t.to_string(),
            "struct<street string, zip int not null, tags list<string>, attrs map<string, decimal(12,2)>>"
        );
        assert_eq!(t.to_string().parse::<ColumnType>().unwrap(), t);
        let ColumnType::Struct(fields) = &t else {
            panic!("not a struct: {t:?}")
        };
        assert!(fields[0].nullable);
        assert!(!fields[1].nullable);
        assert_eq!(
            "list<list<bigint>>".parse::<ColumnType>().unwrap(),
            ColumnType::List(Box::new(ColumnType::List(Box::new(ColumnType::BigInt))))
        );
    }

    #[test]
    fn nested_type_errors_say_where() {
        let e = "struct<a int, a string>".parse::<ColumnType>().unwrap_err();
        assert!(e.contains("field `a` appears twice"), "{e}");
        let e = "list<int".parse::<ColumnType>().unwrap_err();
        assert!(e.contains("ends early"), "{e}");
        let e = "struct<a int; b int>".parse::<ColumnType>().unwrap_err();
        assert!(e.contains("unexpected `;` at character 13"), "{e}");
        let e = "map<string>".parse::<ColumnType>().unwrap_err();
        assert!(e.contains("expected `,`"), "{e}");
        let e = "struct<a strin>".parse::<ColumnType>().unwrap_err();
        assert!(e.contains("unknown type `strin`"), "{e}");
        let deep = format!("{}int{}", "list<".repeat(40), ">".repeat(40));
        assert!(deep.parse::<ColumnType>().unwrap_err().contains("deeper"));
        assert!("int int".parse::<ColumnType>().is_err());
    }
}
