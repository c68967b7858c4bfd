//! Typed identifiers. Each is parsed once at the edge and never passed around
//! as a raw string.
//!
//! Naming rule for domains, products, outputs, inputs and columns: a lowercase
//! ASCII letter followed by up to 62 lowercase letters, digits or underscores.
//! Lowercase only, because unquoted SQL identifiers are folded to lowercase,
//! so any other name could not be written without quotes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("`{0}` is longer than 63 characters")]
    TooLong(String),
    #[error("`{0}` must start with a lowercase letter")]
    BadStart(String),
    #[error("`{name}` contains `{ch}`; use lowercase letters, digits and `_` only")]
    BadChar { name: String, ch: char },
    #[error("`{0}` is not of the form `<domain>/<product>`")]
    BadProductRef(String),
}

fn check_ident(s: &str) -> Result<(), NameError> {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return Err(NameError::Empty);
    };
    if s.len() > 63 {
        return Err(NameError::TooLong(s.to_string()));
    }
    if !first.is_ascii_lowercase() {
        return Err(NameError::BadStart(s.to_string()));
    }
    if let Some(ch) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(NameError::BadChar {
            name: s.to_string(),
            ch,
        });
    }
    Ok(())
}

macro_rules! ident_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and checks a name.
            pub fn parse(s: &str) -> Result<Self, NameError> {
                check_ident(s)?;
                Ok(Self(s.to_string()))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

ident_type!(
    /// A business domain, such as `sales`. Also the SQL schema of its outputs.
    DomainName
);
ident_type!(
    /// A data product's name, unique within its domain.
    ProductName
);
ident_type!(
    /// An output port of a product. Its SQL name is `<domain>.<output>`.
    OutputName
);
ident_type!(
    /// The local name of a product input, used as a table name in its transform SQL.
    InputName
);
ident_type!(
    /// A column of an output or of a declared source.
    ColumnName
);

/// The address of a product: `<domain>/<product>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProductRef {
    pub domain: DomainName,
    pub name: ProductName,
}

impl ProductRef {
    pub fn new(domain: DomainName, name: ProductName) -> Self {
        ProductRef { domain, name }
    }

    /// Parses `<domain>/<product>`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let (d, p) = s
            .split_once('/')
            .ok_or_else(|| NameError::BadProductRef(s.to_string()))?;
        Ok(ProductRef {
            domain: DomainName::parse(d)?,
            name: ProductName::parse(p)?,
        })
    }
}

impl fmt::Display for ProductRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.name)
    }
}

impl TryFrom<String> for ProductRef {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}

impl From<ProductRef> for String {
    fn from(r: ProductRef) -> String {
        r.to_string()
    }
}

/// The SQL name of an output: `<domain>.<output>`, schema-qualified.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SqlName {
    pub schema: DomainName,
    pub table: OutputName,
}

impl fmt::Display for SqlName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// The global address of an output: `mesh://<domain>/<product>/<output>`.
pub fn global_address(product: &ProductRef, output: &OutputName) -> String {
    format!("mesh://{}/{}/{}", product.domain, product.name, output)
}

/// Parses a global address back into its product and output.
pub fn parse_global_address(s: &str) -> Option<(ProductRef, OutputName)> {
    let rest = s.strip_prefix("mesh://")?;
    let mut parts = rest.split('/');
    let domain = DomainName::parse(parts.next()?).ok()?;
    let product = ProductName::parse(parts.next()?).ok()?;
    let output = OutputName::parse(parts.next()?).ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((ProductRef::new(domain, product), output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_sql_friendly_rule() {
        assert!(DomainName::parse("sales").is_ok());
        assert!(DomainName::parse("sales_2").is_ok());
        assert!(matches!(
            DomainName::parse("Sales"),
            Err(NameError::BadStart(_))
        ));
        assert!(matches!(
            DomainName::parse("sa-les"),
            Err(NameError::BadChar { ch: '-', .. })
        ));
        assert!(matches!(DomainName::parse(""), Err(NameError::Empty)));
        assert!(DomainName::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn product_refs_and_addresses_round_trip() {
        let r = ProductRef::parse("sales/orders").unwrap();
        assert_eq!(r.to_string(), "sales/orders");
        let out = OutputName::parse("order_lines").unwrap();
        let addr = global_address(&r, &out);
        assert_eq!(addr, "mesh://sales/orders/order_lines");
        assert_eq!(parse_global_address(&addr), Some((r, out)));
        assert!(ProductRef::parse("sales").is_err());
        assert!(parse_global_address("mesh://sales/orders").is_none());
    }
}
