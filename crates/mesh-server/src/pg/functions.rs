//! PostgreSQL functions that drivers' catalog queries call and DataFusion
//! does not have.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

/// A function whose answer is NULL for every published table:
/// `pg_get_serial_sequence(table, column)` (no column has a sequence);
/// and for the catalog's own functions, whose signatures are not kept:
/// `pg_get_function_result`, `pg_get_function_arguments`,
/// `pg_get_function_identity_arguments` (psql's `\df`; no function is
/// published, so it lists none).
#[derive(Debug, PartialEq, Eq, Hash)]
struct NullText {
    name: &'static str,
    signature: Signature,
}

pub(super) fn null_text_udfs() -> [ScalarUDF; 4] {
    [
        "pg_get_serial_sequence",
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
    ]
    .map(|name| {
        ScalarUDF::new_from_impl(NullText {
            name,
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    })
}

impl ScalarUDFImpl for NullText {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

/// `json_build_object(key, value, ...)`, as JSON text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

pub(super) fn json_build_object_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonBuildObject {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(datafusion::error::DataFusionError::Plan(
                "json_build_object takes keys and values in pairs".into(),
            ));
        }
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let mut out = StringBuilder::new();
        for row in 0..rows {
            let mut object = serde_json::Map::new();
            for pair in arrays.chunks(2) {
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                object.insert(text(&key), json(&value));
            }
            out.append_value(serde_json::Value::Object(object).to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn text(v: &ScalarValue) -> String {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => s.clone(),
        other => other.to_string(),
    }
}

fn json(v: &ScalarValue) -> serde_json::Value {
    use serde_json::Value;
    if v.is_null() {
        return Value::Null;
    }
    match v {
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Int8(_)
        | ScalarValue::Int16(_)
        | ScalarValue::Int32(_)
        | ScalarValue::Int64(_)
        | ScalarValue::UInt8(_)
        | ScalarValue::UInt16(_)
        | ScalarValue::UInt32(_)
        | ScalarValue::UInt64(_)
        | ScalarValue::Float32(_)
        | ScalarValue::Float64(_) => serde_json::from_str(&v.to_string()).unwrap_or(Value::Null),
        other => Value::String(text(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_keep_their_kind() {
        assert_eq!(json(&ScalarValue::Int64(Some(3))), serde_json::json!(3));
        assert_eq!(
            json(&ScalarValue::Boolean(Some(true))),
            serde_json::json!(true)
        );
        assert_eq!(
            json(&ScalarValue::Utf8(Some("a".into()))),
            serde_json::json!("a")
        );
        assert_eq!(json(&ScalarValue::Int64(None)), serde_json::Value::Null);
    }
}

/// `current_user`, `session_user` and `user`: the principal the
/// connection authenticated as.
pub(super) fn user_udfs(principal: &str) -> [ScalarUDF; 3] {
    ["current_user", "session_user", "user"].map(|name| {
        let principal = principal.to_string();
        datafusion::logical_expr::create_udf(
            name,
            vec![],
            DataType::Utf8,
            Volatility::Stable,
            Arc::new(move |_: &[ColumnarValue]| {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                    principal.clone(),
                ))))
            }),
        )
    })
}

/// Settings the server has one value for, as `SHOW` and
/// `current_setting()` answer them.
/// The settings [`fixed_setting`] answers, as `pg_settings` lists them.
pub(super) const FIXED_SETTINGS: &[&str] = &[
    "client_encoding",
    "default_transaction_read_only",
    "integer_datetimes",
    "is_superuser",
    "max_identifier_length",
    "max_index_keys",
    "server_encoding",
    "server_version",
    "server_version_num",
    "standard_conforming_strings",
    "transaction_read_only",
];

pub(super) fn fixed_setting(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    if name == "server_version_num" {
        // Drivers compare it with the version the startup announced.
        let (major, minor) = super::SERVER_VERSION
            .split_once('.')
            .unwrap_or((super::SERVER_VERSION, "0"));
        return Some(format!("{major}{minor:0>4}"));
    }
    Some(
        match name.as_str() {
            "server_version" => super::SERVER_VERSION,
            "server_encoding" | "client_encoding" => "UTF8",
            "standard_conforming_strings" | "integer_datetimes" => "on",
            "transaction_read_only" | "default_transaction_read_only" => "on",
            "max_identifier_length" => "63",
            "max_index_keys" => "32",
            "is_superuser" => "off",
            _ => return None,
        }
        .to_string(),
    )
}

/// `current_setting(name [, missing_ok])` and `set_config(name, value,
/// is_local)` over the connection's `search_path` and the fixed settings.
#[derive(Debug)]
struct Settings {
    name: &'static str,
    signature: Signature,
    search_path: Arc<std::sync::Mutex<Vec<String>>>,
}

impl PartialEq for Settings {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.search_path, &other.search_path)
    }
}

impl Eq for Settings {}

impl std::hash::Hash for Settings {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

pub(super) fn setting_udfs(search_path: Arc<std::sync::Mutex<Vec<String>>>) -> [ScalarUDF; 2] {
    ["current_setting", "set_config"].map(|name| {
        ScalarUDF::new_from_impl(Settings {
            name,
            signature: Signature::variadic_any(Volatility::Volatile),
            search_path: search_path.clone(),
        })
    })
}

fn refused(code: &str, message: String) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Execution(format!("{message} (SQLSTATE {code})"))
}

impl ScalarUDFImpl for Settings {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = |i: usize| -> Result<Option<ScalarValue>> {
            match args.args.get(i) {
                None => Ok(None),
                Some(ColumnarValue::Scalar(s)) => Ok(Some(s.clone())),
                Some(ColumnarValue::Array(_)) => Err(refused(
                    "0A000",
                    format!("{} takes constant arguments here", self.name),
                )),
            }
        };
        let name = scalar(0)?.map(|s| text(&s)).unwrap_or_default();
        let path = || {
            self.search_path
                .lock()
                .map(|p| p.clone())
                .unwrap_or_default()
        };
        let value = if self.name == "set_config" {
            if !name.eq_ignore_ascii_case("search_path") {
                return Err(refused(
                    "0A000",
                    format!("set_config sets search_path only; use SET {name} = …"),
                ));
            }
            let value = scalar(1)?.map(|s| text(&s)).unwrap_or_default();
            if let Ok(mut p) = self.search_path.lock() {
                *p = super::catalog::parse_search_path(&value);
            }
            Some(value)
        } else if name.eq_ignore_ascii_case("search_path") {
            Some(super::catalog::search_path_text(&path()))
        } else if let Some(v) = fixed_setting(&name) {
            Some(v)
        } else if matches!(scalar(1)?, Some(ScalarValue::Boolean(Some(true)))) {
            None
        } else {
            return Err(refused(
                "42704",
                format!("unrecognized configuration parameter \"{name}\""),
            ));
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(value)))
    }
}

/// `pg_size_pretty(bytes)`: 1024 → `1024 bytes`, 10240 → `10 kB`.
pub(super) fn pg_size_pretty_udf() -> ScalarUDF {
    datafusion::logical_expr::create_udf(
        "pg_size_pretty",
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let sizes = datafusion::common::cast::as_int64_array(&arrays[0])?;
            let out: datafusion::arrow::array::StringArray =
                sizes.iter().map(|v| v.map(size_pretty)).collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    )
}

/// PostgreSQL's rounding: a unit is used once the value reaches 10 of it.
fn size_pretty(bytes: i64) -> String {
    let units = ["bytes", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes;
    let mut unit = 0;
    while unit + 1 < units.len() && value.abs() >= 10 * 1024 {
        value = (value + value.signum() * 512) / 1024;
        unit += 1;
    }
    format!("{value} {}", units[unit])
}

#[cfg(test)]
mod size_tests {
    use super::size_pretty;

    #[test]
    fn sizes_read_like_postgres() {
        assert_eq!(size_pretty(1024), "1024 bytes");
        assert_eq!(size_pretty(10 * 1024), "10 kB");
        assert_eq!(size_pretty(123_456_789), "118 MB");
    }
}
