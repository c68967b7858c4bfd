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

fn int_digits(t: ColumnType) -> Option<i16> {
    Some(match t {
        ColumnType::TinyInt => 3,
        ColumnType::SmallInt => 5,
        ColumnType::Int => 10,
        ColumnType::BigInt => 19,
        _ => return None,
    })
}

fn int_rank(t: ColumnType) -> Option<u8> {
    Some(match t {
        ColumnType::TinyInt => 1,
        ColumnType::SmallInt => 2,
        ColumnType::Int => 3,
        ColumnType::BigInt => 4,
        _ => return None,
    })
}

/// Whether every value of `from` is exactly representable in `to`.
pub fn widens(from: ColumnType, to: ColumnType) -> bool {
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
        ) => s2 >= s1 && (p2 as i16 - s2 as i16) >= (p1 as i16 - s1 as i16),
        (a, C::Decimal { precision, scale }) => {
            int_digits(a).is_some_and(|d| precision as i16 - scale as i16 >= d)
        }
        _ => false,
    }
}

/// Classifies a change of a column's type from `from` to `to`.
pub fn classify(from: ColumnType, to: ColumnType) -> TypeChange {
    if widens(from, to) {
        TypeChange::Widening
    } else if widens(to, from) {
        TypeChange::Narrowing
    } else {
        TypeChange::Incompatible
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
        assert_eq!(classify(C::Int, C::BigInt), TypeChange::Widening);
        assert_eq!(classify(C::BigInt, C::Int), TypeChange::Narrowing);
        assert_eq!(classify(C::Float, C::Double), TypeChange::Widening);
        assert_eq!(classify(C::BigInt, C::Double), TypeChange::Incompatible);
        assert_eq!(classify(dec(10, 2), dec(12, 2)), TypeChange::Widening);
        assert_eq!(classify(dec(10, 2), dec(12, 4)), TypeChange::Widening);
        assert_eq!(classify(dec(12, 4), dec(10, 2)), TypeChange::Narrowing);
        assert_eq!(classify(dec(10, 2), dec(10, 4)), TypeChange::Incompatible);
        assert_eq!(classify(C::Int, dec(12, 2)), TypeChange::Widening);
        assert_eq!(classify(C::BigInt, dec(20, 2)), TypeChange::Incompatible);
        assert_eq!(classify(C::Int, C::String), TypeChange::Incompatible);
        assert_eq!(classify(C::Date, C::Timestamp), TypeChange::Incompatible);
    }
}
