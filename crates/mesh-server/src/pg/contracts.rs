//! `pg_catalog` tables completed from the contracts.
//!
//! The catalog tables `datafusion-pg-catalog` builds know a table's Arrow
//! schema only: every column type without its modifier, nested types as
//! `text`, no keys and no comments. The tables here complete them from
//! the contracts of the tables the caller may see:
//!
//! - `pg_attribute`: the wire's type for every column (`numeric(p,s)` with
//!   its modifier, arrays of their element type, structs as `record`);
//! - `pg_class`, `pg_index`, `pg_constraint`: a primary key declared in a
//!   contract is a unique index `<table>_pkey` and a constraint `p`;
//! - `pg_description`: table and column descriptions;
//! - `pg_settings`: the settings the server has one value for (`SHOW`
//!   answers the same), which drivers read (pgjdbc: `max_index_keys`).
//!
//! Rows are added for tables listed in `pg_class` only, so a table the
//! caller may not see adds nothing.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::scalar::ScalarValue;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::PgCatalogSchemaProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::pgwire::api::Type;
use mesh_service::query::{DESCRIPTION, PRIMARY_KEY};

use super::catalog::Visible;

type Inner = PgCatalogSchemaProvider<Visible, EmptyContextProvider>;

/// OIDs of the primary-key index and constraint of the table with OID
/// `t`. Table OIDs are handed out from 16384 up, one per table, so these
/// ranges never meet them.
fn index_oid(t: i32) -> i32 {
    t + 0x4000_0000
}

fn constraint_oid(t: i32) -> i32 {
    t + 0x6000_0000
}

/// `pg_class`'s own OID in Postgres. Here `pg_class` lists the catalog
/// tables with OIDs handed out like any other (so that
/// `'pg_catalog.pg_class'::regclass` finds it), and descriptions use that
/// OID when `pg_class` lists it.
const PG_CLASS_OID: i32 = 1259;
/// `pg_catalog`'s namespace OID.
const PG_CATALOG_NAMESPACE: i32 = 11;
/// The btree access method.
const BTREE_OID: i32 = 403;

/// The primary-key indexes `pg_class` listed last on a connection, by
/// index OID: what `pg_get_indexdef` describes. A statement calling it on
/// `pg_index.indexrelid` has scanned `pg_index` first.
#[derive(Debug, Clone, Default)]
pub(super) struct IndexDefs(Arc<Mutex<HashMap<i32, IndexDef>>>);

#[derive(Debug, Clone)]
struct IndexDef {
    /// `CREATE UNIQUE INDEX … USING btree (…)`.
    text: String,
    columns: Vec<String>,
}

impl IndexDefs {
    fn set(&self, relations: &BTreeMap<i32, Relation>) {
        let defs = relations
            .values()
            .filter_map(|r| {
                let columns: Vec<String> = r
                    .key()
                    .iter()
                    .map(|n| r.schema.field(*n as usize - 1).name().clone())
                    .collect();
                (!columns.is_empty()).then(|| {
                    let text = format!(
                        "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
                        key_name(r),
                        r.domain,
                        r.name,
                        columns.join(", ")
                    );
                    (index_oid(r.oid), IndexDef { text, columns })
                })
            })
            .collect();
        if let Ok(mut d) = self.0.lock() {
            *d = defs;
        }
    }

    /// The definition of index `oid`, or (for `column` > 0) its column.
    fn get(&self, oid: i32, column: i64) -> Option<String> {
        let defs = self.0.lock().ok()?;
        let def = defs.get(&oid)?;
        if column > 0 {
            def.columns.get(column as usize - 1).cloned()
        } else {
            Some(def.text.clone())
        }
    }
}

/// `pg_catalog` with the tables of the module doc completed.
#[derive(Debug)]
pub(super) struct ContractCatalog {
    inner: Arc<Inner>,
    visible: Visible,
    pub(super) index_defs: IndexDefs,
}

impl ContractCatalog {
    pub(super) fn new(inner: Arc<Inner>, visible: Visible) -> Self {
        ContractCatalog {
            inner,
            visible,
            index_defs: IndexDefs::default(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Attribute,
    Class,
    Constraint,
    Index,
    Description,
    Settings,
}

#[async_trait]
impl SchemaProvider for ContractCatalog {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        let kind = match name.to_ascii_lowercase().as_str() {
            "pg_attribute" => Kind::Attribute,
            "pg_class" => Kind::Class,
            "pg_constraint" => Kind::Constraint,
            "pg_index" => Kind::Index,
            "pg_description" => Kind::Description,
            "pg_settings" => Kind::Settings,
            _ => return Ok(Some(table)),
        };
        Ok(Some(Arc::new(Completed {
            table,
            kind,
            inner: self.inner.clone(),
            visible: self.visible.clone(),
            index_defs: self.index_defs.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// One catalog table, completed when scanned.
#[derive(Debug)]
struct Completed {
    table: Arc<dyn TableProvider>,
    kind: Kind,
    inner: Arc<Inner>,
    visible: Visible,
    index_defs: IndexDefs,
}

/// The published tables `pg_class` lists, by OID, and the OID it gives
/// to `pg_class` itself.
pub(super) struct Relations {
    tables: BTreeMap<i32, Relation>,
    pg_class: i32,
}

/// A published table as `pg_class` lists it, with its contract.
struct Relation {
    oid: i32,
    namespace: i32,
    domain: String,
    name: String,
    schema: SchemaRef,
}

impl Relation {
    /// The declared primary key, as column numbers (from 1).
    fn key(&self) -> Vec<i16> {
        let Some(key) = self.schema.metadata().get(PRIMARY_KEY) else {
            return Vec::new();
        };
        key.split(',')
            .filter_map(|c| self.schema.index_of(c).ok())
            .map(|i| i as i16 + 1)
            .collect()
    }
}

async fn rows(table: &Arc<dyn TableProvider>, state: &dyn Session) -> Result<Vec<RecordBatch>> {
    let plan = table.scan(state, None, &[], None).await?;
    collect(plan, state.task_ctx()).await
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("pg_catalog lacks column {name}")))
}

impl Completed {
    /// The published tables `pg_class` lists for this caller, by OID,
    /// read once per statement however many catalog tables it reads.
    async fn relations(&self, state: &dyn Session) -> Result<Arc<Relations>> {
        let cell = self.visible.relations_cell()?;
        cell.get_or_try_init(|| async { self.read_relations(state).await.map(Arc::new) })
            .await
            .cloned()
    }

    async fn read_relations(&self, state: &dyn Session) -> Result<Relations> {
        let outputs = self.visible.outputs().await?;
        let mut namespaces = BTreeMap::new();
        if let Some(ns) = self.inner.table("pg_namespace").await? {
            for b in rows(&ns, state).await? {
                let oids = column(&b, "oid")?.as_primitive::<Int32Type>();
                let names = column(&b, "nspname")?.as_string::<i32>();
                for i in 0..b.num_rows() {
                    namespaces.insert(oids.value(i), names.value(i).to_string());
                }
            }
        }
        let mut relations = Relations {
            tables: BTreeMap::new(),
            pg_class: PG_CLASS_OID,
        };
        let Some(class) = self.inner.table("pg_class").await? else {
            return Ok(relations);
        };
        for b in rows(&class, state).await? {
            let oids = column(&b, "oid")?.as_primitive::<Int32Type>();
            let names = column(&b, "relname")?.as_string::<i32>();
            let spaces = column(&b, "relnamespace")?.as_primitive::<Int32Type>();
            for i in 0..b.num_rows() {
                if spaces.value(i) == PG_CATALOG_NAMESPACE && names.value(i) == "pg_class" {
                    relations.pg_class = oids.value(i);
                }
                let Some(schema) = namespaces.get(&spaces.value(i)) else {
                    continue;
                };
                let key = (schema.clone(), names.value(i).to_string());
                if let Some(declared) = outputs.get(&key) {
                    relations.tables.insert(
                        oids.value(i),
                        Relation {
                            oid: oids.value(i),
                            namespace: spaces.value(i),
                            domain: key.0,
                            name: key.1,
                            schema: declared.clone(),
                        },
                    );
                }
            }
        }
        Ok(relations)
    }

    async fn completed(&self, state: &dyn Session) -> Result<Vec<RecordBatch>> {
        let mut batches = rows(&self.table, state).await?;
        if let Kind::Settings = self.kind {
            let mut listed = std::collections::BTreeSet::new();
            for b in &batches {
                let names = column(b, "name")?.as_string::<i32>();
                listed.extend((0..b.num_rows()).map(|i| names.value(i).to_string()));
            }
            let added: Vec<Row> = super::functions::FIXED_SETTINGS
                .iter()
                .filter(|name| !listed.contains(**name))
                .filter_map(|name| {
                    let value = super::functions::fixed_setting(name)?;
                    Some(vec![("name", text(*name)), ("setting", text(value))])
                })
                .collect();
            batches.push(batch_of(&self.table.schema(), &added)?);
            return Ok(batches);
        }
        let read = self.relations(state).await?;
        let (relations, pg_class) = (&read.tables, read.pg_class);
        self.index_defs.set(relations);
        if relations.is_empty() {
            return Ok(batches);
        }
        let schema = self.table.schema();
        let added: Vec<Row> = match self.kind {
            Kind::Attribute => {
                return batches
                    .iter()
                    .map(|b| typed_attributes(b, relations))
                    .collect();
            }
            Kind::Class => {
                batches = batches
                    .iter()
                    .map(|b| with_indexes(b, relations))
                    .collect::<Result<_>>()?;
                relations.values().filter_map(index_class).collect()
            }
            Kind::Index => relations.values().filter_map(index_row).collect(),
            Kind::Constraint => relations.values().filter_map(constraint_row).collect(),
            Kind::Description => relations
                .values()
                .flat_map(|r| descriptions(r, pg_class))
                .collect(),
            Kind::Settings => Vec::new(),
        };
        if !added.is_empty() {
            batches.push(batch_of(&schema, &added)?);
        }
        Ok(batches)
    }
}

#[async_trait]
impl TableProvider for Completed {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        self.table.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = self.completed(state).await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[batches],
            self.schema(),
            projection.cloned(),
        )?)
    }
}

/// The type a column travels as on the wire, with its modifier and array
/// dimensions: `(atttypid, atttypmod, attndims)`.
fn wire_type(dt: &DataType) -> (i32, i32, i32) {
    let oid = into_pg_type(dt).map_or(Type::TEXT.oid(), |t| t.oid()) as i32;
    match dt {
        DataType::Decimal128(p, s) => (oid, ((i32::from(*p) << 16) | i32::from(*s as u8)) + 4, 0),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => (oid, -1, 1),
        DataType::Map(..) => (Type::TEXT.oid() as i32, -1, 0),
        _ => (oid, -1, 0),
    }
}

/// `pg_attribute` with each published column's wire type and modifier.
fn typed_attributes(b: &RecordBatch, relations: &BTreeMap<i32, Relation>) -> Result<RecordBatch> {
    let rel = column(b, "attrelid")?.as_primitive::<Int32Type>();
    let name = column(b, "attname")?.as_string::<i32>();
    let mut types: Vec<i32> = column(b, "atttypid")?
        .as_primitive::<Int32Type>()
        .values()
        .to_vec();
    let mut mods: Vec<i32> = column(b, "atttypmod")?
        .as_primitive::<Int32Type>()
        .values()
        .to_vec();
    let mut dims: Vec<i32> = column(b, "attndims")?
        .as_primitive::<Int32Type>()
        .values()
        .to_vec();
    for i in 0..b.num_rows() {
        let Some(field) = relations
            .get(&rel.value(i))
            .and_then(|r| r.schema.field_with_name(name.value(i)).ok())
        else {
            continue;
        };
        (types[i], mods[i], dims[i]) = wire_type(field.data_type());
    }
    let schema = b.schema();
    let mut columns = b.columns().to_vec();
    for (col, values) in [("atttypid", types), ("atttypmod", mods), ("attndims", dims)] {
        columns[schema.index_of(col)?] = Arc::new(Int32Array::from(values));
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `pg_class` with `relhasindex` set on tables with a primary key.
fn with_indexes(b: &RecordBatch, relations: &BTreeMap<i32, Relation>) -> Result<RecordBatch> {
    let oids = column(b, "oid")?.as_primitive::<Int32Type>();
    let has = column(b, "relhasindex")?.as_boolean();
    let values: Vec<bool> = (0..b.num_rows())
        .map(|i| {
            has.value(i)
                || relations
                    .get(&oids.value(i))
                    .is_some_and(|r| !r.key().is_empty())
        })
        .collect();
    let schema = b.schema();
    let mut columns = b.columns().to_vec();
    columns[schema.index_of("relhasindex")?] =
        Arc::new(datafusion::arrow::array::BooleanArray::from(values));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// A row to add: values by column; other columns take their defaults.
type Row = Vec<(&'static str, ScalarValue)>;

fn int(v: i32) -> ScalarValue {
    ScalarValue::Int32(Some(v))
}

fn small(v: usize) -> ScalarValue {
    ScalarValue::Int16(Some(v as i16))
}

fn text(v: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(v.into()))
}

fn yes() -> ScalarValue {
    ScalarValue::Boolean(Some(true))
}

fn key_name(r: &Relation) -> String {
    format!("{}_pkey", r.name)
}

fn index_class(r: &Relation) -> Option<Row> {
    let key = r.key();
    (!key.is_empty()).then(|| {
        vec![
            ("oid", int(index_oid(r.oid))),
            ("relname", text(key_name(r))),
            ("relnamespace", int(r.namespace)),
            ("relam", int(BTREE_OID)),
            ("relkind", text("i")),
            ("relpersistence", text("p")),
            ("relreplident", text("n")),
            ("relispopulated", yes()),
            ("relnatts", small(key.len())),
        ]
    })
}

fn index_row(r: &Relation) -> Option<Row> {
    let key = r.key();
    let vector = |v: &str| vec![v; key.len()].join(" ");
    (!key.is_empty()).then(|| {
        vec![
            ("indexrelid", int(index_oid(r.oid))),
            ("indrelid", int(r.oid)),
            ("indnatts", small(key.len())),
            ("indnkeyatts", small(key.len())),
            ("indisunique", yes()),
            ("indisprimary", yes()),
            ("indimmediate", yes()),
            ("indisvalid", yes()),
            ("indisready", yes()),
            ("indislive", yes()),
            (
                "indkey",
                text(
                    key.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ),
            ("indcollation", text(vector("0"))),
            ("indclass", text(vector("0"))),
            ("indoption", text(vector("0"))),
        ]
    })
}

fn constraint_row(r: &Relation) -> Option<Row> {
    let key = r.key();
    (!key.is_empty()).then(|| {
        let numbers: Vec<String> = key.iter().map(ToString::to_string).collect();
        vec![
            ("oid", int(constraint_oid(r.oid))),
            ("conname", text(key_name(r))),
            ("connamespace", int(r.namespace)),
            ("contype", text("p")),
            ("convalidated", yes()),
            ("conrelid", int(r.oid)),
            ("conindid", int(index_oid(r.oid))),
            ("confupdtype", text(" ")),
            ("confdeltype", text(" ")),
            ("confmatchtype", text(" ")),
            ("conislocal", yes()),
            ("connoinherit", yes()),
            ("conkey", text(format!("{{{}}}", numbers.join(",")))),
        ]
    })
}

fn descriptions(r: &Relation, pg_class: i32) -> Vec<Row> {
    let row = |sub: usize, d: &String| {
        vec![
            ("objoid", int(r.oid)),
            ("classoid", int(pg_class)),
            ("objsubid", int(sub as i32)),
            ("description", text(d.clone())),
        ]
    };
    r.schema
        .metadata()
        .get(DESCRIPTION)
        .map(|d| row(0, d))
        .into_iter()
        .chain(
            r.schema
                .fields()
                .iter()
                .enumerate()
                .filter_map(|(i, f)| f.metadata().get(DESCRIPTION).map(|d| row(i + 1, d))),
        )
        .collect()
}

/// `pg_get_indexdef(index [, column, pretty])`: the definition of a
/// primary-key index, or one of its columns; NULL for any other OID.
#[derive(Debug)]
pub(super) struct IndexDefUdf {
    defs: IndexDefs,
    signature: Signature,
}

impl IndexDefUdf {
    pub(super) fn udf(defs: &IndexDefs) -> ScalarUDF {
        ScalarUDF::new_from_impl(IndexDefUdf {
            defs: defs.clone(),
            signature: Signature::variadic_any(Volatility::Stable),
        })
    }
}

impl PartialEq for IndexDefUdf {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.defs.0, &other.defs.0)
    }
}

impl Eq for IndexDefUdf {}

impl Hash for IndexDefUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.defs.0).hash(state);
    }
}

impl ScalarUDFImpl for IndexDefUdf {
    fn name(&self) -> &str {
        "pg_get_indexdef"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let as_i64 = |a: &ArrayRef| datafusion::arrow::compute::cast(a, &DataType::Int64);
        let oids = match arrays.first() {
            Some(a) => as_i64(a)?,
            None => return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
        };
        let columns = arrays.get(1).map(as_i64).transpose()?;
        let oids = oids.as_primitive::<Int64Type>();
        let columns = columns.as_ref().map(|c| c.as_primitive::<Int64Type>());
        let out: StringArray = (0..rows)
            .map(|i| {
                if oids.is_null(i) {
                    return None;
                }
                let column = columns.map_or(0, |c| if c.is_null(i) { 0 } else { c.value(i) });
                self.defs.get(oids.value(i) as i32, column)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The default of a column a row leaves out: NULL where allowed, else
/// zero, false or empty.
fn default_of(dt: &DataType, nullable: bool) -> Result<ScalarValue> {
    Ok(match dt {
        _ if nullable => ScalarValue::try_from(dt)?,
        DataType::Boolean => ScalarValue::Boolean(Some(false)),
        DataType::Utf8 => text(""),
        DataType::Float64 => ScalarValue::Float64(Some(0.0)),
        DataType::Float32 => ScalarValue::Float32(Some(0.0)),
        DataType::Int64 => ScalarValue::Int64(Some(0)),
        DataType::Int16 => ScalarValue::Int16(Some(0)),
        DataType::Int32 => int(0),
        other => ScalarValue::try_from(other)?,
    })
}

/// The rows as one batch of `schema`.
fn batch_of(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let default = default_of(field.data_type(), field.is_nullable())?;
        let values = rows.iter().map(|row| {
            row.iter()
                .find(|(name, _)| *name == field.name())
                .map_or_else(|| default.clone(), |(_, v)| v.clone())
        });
        let array = ScalarValue::iter_to_array(values)?;
        let array = if array.data_type() == field.data_type() {
            array
        } else {
            datafusion::arrow::compute::cast(&array, field.data_type())?
        };
        columns.push(array);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Int16Type};

    #[test]
    fn decimals_keep_precision_and_scale_and_lists_are_arrays() {
        assert_eq!(
            wire_type(&DataType::Decimal128(12, 2)),
            (1700, (12 << 16 | 2) + 4, 0)
        );
        let list = DataType::List(Arc::new(Field::new("element", DataType::Int64, true)));
        assert_eq!(wire_type(&list), (1016, -1, 1));
        assert_eq!(wire_type(&DataType::Int32), (23, -1, 0));
    }

    #[test]
    fn added_rows_fill_every_column() {
        let schema: SchemaRef = Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            Field::new("a", DataType::Int32, false),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Int16, false),
        ]));
        let b = batch_of(&schema, &[vec![("a", int(7))], vec![("b", text("x"))]]).unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(0).as_primitive::<Int32Type>().value(0), 7);
        assert!(b.column(1).is_null(0));
        assert_eq!(b.column(2).as_primitive::<Int16Type>().value(1), 0);
    }
}
