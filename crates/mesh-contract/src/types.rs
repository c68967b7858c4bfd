//! Whether a column type change keeps every old value representable.

use mesh_spec::ColumnType;

/// How a type change affects the values a reader can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeChange {
    /// Every old value converts to the new type without loss.
    Widening,
    /// The reverse of a widening: some old values no longer fit.
    Narrowing,
    /// A different kind of type (e.g. a number becoming a string).
    Incompatible,
}

fn int_digits(t: &ColumnType) -> Option<i16> {
    Some(match t {
        ColumnType::TinyInt => 3,
        ColumnType::SmallInt => 5,
        ColumnType::Int => 10,
        ColumnType::BigInt => 19,
        _ => return None,
    })
}

fn int_rank(t: &ColumnType) -> Option<u8> {
    Some(match t {
        ColumnType::TinyInt => 1,
        ColumnType::SmallInt => 2,
        ColumnType::Int => 3,
        ColumnType::BigInt => 4,
        _ => return None,
    })
}

/// Whether every value of `from` is exactly representable in `to`.
///
/// Nested types widen element by element: a list or map when its element
/// types widen, a struct when every old field is still there, widened, and
/// with the same nullability (a struct may gain fields).
pub fn widens(from: &ColumnType, to: &ColumnType) -> bool {
    use ColumnType as C;
    if from == to {
        return true;
    }
    match (from, to) {
        (a, b) if int_rank(a).is_some() && int_rank(b).is_some() => int_rank(a) < int_rank(b),
        // f32 holds every 16-bit integer exactly, f64 every 32-bit one.
        (C::TinyInt | C::SmallInt, C::Float | C::Double) => true,
        (C::Int, C::Double) => true,
        (C::Float, C::Double) => true,
        (
            C::Decimal {
                precision: p1,
                scale: s1,
            },
            C::Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s2 >= s1 && (*p2 as i16 - *s2 as i16) >= (*p1 as i16 - *s1 as i16),
        (a, C::Decimal { precision, scale }) => {
            int_digits(a).is_some_and(|d| *precision as i16 - *scale as i16 >= d)
        }
        (C::List(a), C::List(b)) => widens(a, b),
        (C::Map(ka, va), C::Map(kb, vb)) => widens(ka, kb) && widens(va, vb),
        (C::Struct(old), C::Struct(new)) => old.iter().all(|f| {
            new.iter()
                .find(|g| g.name == f.name)
                .is_some_and(|g| g.nullable == f.nullable && widens(&f.ty, &g.ty))
        }),
        _ => false,
    }
}

/// Classifies a change of a column's type from `from` to `to`.
pub fn classify(from: &ColumnType, to: &ColumnType) -> TypeChange {
    if widens(from, to) {
        TypeChange::Widening
    } else if widens(to, from) {
        TypeChange::Narrowing
    } else {
        TypeChange::Incompatible
    }
}

/// One difference between two versions of a column's type, at a path
/// inside the column. Paths extend the column name: `.field` for a struct
/// field, `[]` for list elements, `{key}` and `{value}` for a map's keys and
/// values; so `address.zip` or `items[].price`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NestedChange {
    /// The type at `path` changed (`path` is the column itself when the
    /// shapes differ, e.g. a struct became a string).
    Type {
        path: String,
        from: ColumnType,
        to: ColumnType,
        change: TypeChange,
    },
    FieldAdded {
        path: String,
        ty: ColumnType,
        nullable: bool,
    },
    FieldRemoved {
        path: String,
        ty: ColumnType,
    },
    /// A struct field became nullable (`true`) or `not null` (`false`).
    Nullability {
        path: String,
        nullable: bool,
    },
}

/// The differences between two types of a column called `column`, descending
/// into lists, maps and structs so each change names the innermost place
/// it happens. Struct fields are matched by name.
pub fn type_changes(column: &str, from: &ColumnType, to: &ColumnType) -> Vec<NestedChange> {
    let mut out = Vec::new();
    nested(column.to_string(), from, to, &mut out);
    out
}

fn nested(path: String, from: &ColumnType, to: &ColumnType, out: &mut Vec<NestedChange>) {
    use ColumnType as C;
    if from == to {
        return;
    }
    match (from, to) {
        (C::List(a), C::List(b)) => nested(format!("{path}[]"), a, b, out),
        (C::Map(ka, va), C::Map(kb, vb)) => {
            nested(format!("{path}{{key}}"), ka, kb, out);
            nested(format!("{path}{{value}}"), va, vb, out);
        }
        (C::Struct(old), C::Struct(new)) => {
            for f in old {
                let at = format!("{path}.{}", f.name);
                match new.iter().find(|g| g.name == f.name) {
                    None => out.push(NestedChange::FieldRemoved {
                        path: at,
                        ty: f.ty.clone(),
                    }),
                    Some(g) => {
                        nested(at.clone(), &f.ty, &g.ty, out);
                        if f.nullable != g.nullable {
                            out.push(NestedChange::Nullability {
                                path: at,
                                nullable: g.nullable,
                            });
                        }
                    }
                }
            }
            for g in new {
                if !old.iter().any(|f| f.name == g.name) {
                    out.push(NestedChange::FieldAdded {
                        path: format!("{path}.{}", g.name),
                        ty: g.ty.clone(),
                        nullable: g.nullable,
                    });
                }
            }
        }
        _ => out.push(NestedChange::Type {
            path,
            from: from.clone(),
            to: to.clone(),
            change: classify(from, to),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType as C;

    fn dec(precision: u8, scale: i8) -> ColumnType {
        C::Decimal { precision, scale }
    }

    #[test]
    fn integer_and_decimal_widening() {
        assert_eq!(classify(&C::Int, &C::BigInt), TypeChange::Widening);
        assert_eq!(classify(&C::BigInt, &C::Int), TypeChange::Narrowing);
        assert_eq!(classify(&C::Float, &C::Double), TypeChange::Widening);
        assert_eq!(classify(&C::BigInt, &C::Double), TypeChange::Incompatible);
        assert_eq!(classify(&dec(10, 2), &dec(12, 2)), TypeChange::Widening);
        assert_eq!(classify(&dec(10, 2), &dec(12, 4)), TypeChange::Widening);
        assert_eq!(classify(&dec(12, 4), &dec(10, 2)), TypeChange::Narrowing);
        assert_eq!(classify(&dec(10, 2), &dec(10, 4)), TypeChange::Incompatible);
        assert_eq!(classify(&C::Int, &dec(12, 2)), TypeChange::Widening);
        assert_eq!(classify(&C::BigInt, &dec(20, 2)), TypeChange::Incompatible);
        assert_eq!(classify(&C::Int, &C::String), TypeChange::Incompatible);
        assert_eq!(classify(&C::Date, &C::Timestamp), TypeChange::Incompatible);
    }

    fn t(s: &str) -> ColumnType {
        s.parse().unwrap()
    }

    #[test]
    fn nested_types_widen_element_by_element() {
        assert_eq!(
            classify(&t("list<int>"), &t("list<bigint>")),
            TypeChange::Widening
        );
        assert_eq!(
            classify(&t("map<string, bigint>"), &t("map<string, int>")),
            TypeChange::Narrowing
        );
        assert_eq!(
            classify(&t("struct<a int>"), &t("struct<a bigint, b string>")),
            TypeChange::Widening
        );
        assert_eq!(
            classify(&t("struct<a int, b string>"), &t("struct<a int>")),
            TypeChange::Narrowing
        );
        assert_eq!(
            classify(&t("struct<a int>"), &t("list<int>")),
            TypeChange::Incompatible
        );
    }

    #[test]
    fn nested_changes_name_the_innermost_path() {
        let changes = type_changes(
            "address",
            &t("struct<street string, zip int, geo struct<lat double>, tags list<struct<k int>>>"),
            &t(
                "struct<street string not null, zip string, geo struct<lat double, lon double>, tags list<struct<k bigint>>>",
            ),
        );
        let paths: Vec<String> = changes
            .iter()
            .map(|c| match c {
                NestedChange::Type { path, change, .. } => format!("{path} {change:?}"),
                NestedChange::FieldAdded { path, .. } => format!("{path} added"),
                NestedChange::FieldRemoved { path, .. } => format!("{path} removed"),
                NestedChange::Nullability { path, nullable } => {
                    format!("{path} nullable={nullable}")
                }
            })
            .collect();
        assert_eq!(
            paths,
            [
                "address.street nullable=false",
                "address.zip Incompatible",
                "address.geo.lon added",
                "address.tags[].k Widening",
            ]
        );
        let map = type_changes("m", &t("map<string, int>"), &t("map<int, int>"));
        assert!(matches!(&map[..], [NestedChange::Type { path, .. }] if path == "m{key}"));
        assert!(type_changes("c", &t("struct<a int>"), &t("struct<a int>")).is_empty());
    }
}
