//! Arrow Flight SQL (arrow-flight's `FlightSqlService`).
//!
//! A thin adapter like the others: every call carries a mesh token
//! (`authorization: Bearer mesh_…`, or Basic auth in the handshake, which
//! answers with the bearer token), becomes a [`Caller`], and plans and runs
//! through [`Mesh::prepare`] / [`Mesh::execute`]. Results stream batch by
//! batch as they are computed. Catalog calls (GetCatalogs, GetDbSchemas,
//! GetTables) list only what the caller may see.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightServiceServer;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use base64::Engine;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use mesh_service::{Caller, Mesh, ServiceError, Statement};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::prepared::PreparedStatements;

type Rows = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

pub struct MeshFlightSql {
    mesh: Arc<Mesh>,
    metrics: Arc<crate::metrics::Metrics>,
    prepared: PreparedStatements,
    info: SqlInfoData,
}

impl MeshFlightSql {
    pub fn new(mesh: Arc<Mesh>, metrics: Arc<crate::metrics::Metrics>) -> Result<Self, Status> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "Meshwork");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        info.append(SqlInfo::FlightSqlServerCancel, false);
        let info = info.build().map_err(|e| Status::internal(e.to_string()))?;
        Ok(MeshFlightSql {
            mesh,
            metrics,
            prepared: PreparedStatements::default(),
            info,
        })
    }

    pub fn into_server(self) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self)
    }

    /// The caller a request's bearer token names.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some(token) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
        else {
            return Err(unauthenticated());
        };
        self.mesh
            .authenticate_from(token.trim(), request.remote_addr().map(|a| a.ip()))
            .await
            .map_err(|_| unauthenticated())
    }

    /// A statement that fails at planning (`GetFlightInfo`) never reaches
    /// `DoGet`: it is counted here, as every other protocol counts it.
    fn failed_planning(&self, e: mesh_service::ServiceError) -> Status {
        self.metrics.query("flight").finish(Err(&e));
        status(e)
    }

    /// Runs `sql` with `params` as `caller`, streaming Arrow IPC.
    async fn rows(
        &self,
        caller: &Caller,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<Response<Rows>, Status> {
        let mut timer = self.metrics.query("flight");
        let started = async {
            let planned = self
                .mesh
                .prepare(caller, Statement::sql(sql).for_arrow_ipc())
                .await?;
            self.mesh.execute(planned, params).await
        };
        let rows = match started.await {
            Ok(rows) => rows,
            Err(e) => {
                timer.finish(Err(&e));
                return Err(status(e));
            }
        };
        let schema = rows.schema.clone();
        // The timer records the outcome when the last batch has been sent.
        let observed = stream::unfold(
            Some((rows.into_batches().boxed(), timer)),
            |state| async move {
                let (mut batches, mut timer) = state?;
                match batches.next().await {
                    None => {
                        timer.finish(Ok(()));
                        None
                    }
                    Some(Ok(batch)) => Some((Ok(batch), Some((batches, timer)))),
                    Some(Err(e)) => {
                        timer.finish(Err(&e));
                        Some((Err(e), None))
                    }
                }
            },
        );
        Ok(Response::new(encode(schema, observed)))
    }

    fn statement(
        &self,
        handle: &[u8],
        caller: &Caller,
    ) -> Result<(String, Option<ParamValues>), Status> {
        self.prepared.get(handle, &caller.name, Instant::now())
    }

    /// The FlightInfo of a catalog listing, for a caller with a token.
    async fn listing(
        &self,
        schema: &Schema,
        query: impl ProstMessageExt,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        info(schema, query, request.into_inner())
    }

    /// The visible tables as `(domain, name, schema)`.
    async fn tables(&self, caller: &Caller) -> Result<Vec<mesh_service::VisibleTable>, Status> {
        self.mesh.visible_tables(caller).await.map_err(status)
    }
}

/// A table's schema as `GetTables` describes it: each field carries the
/// Flight SQL column metadata (`ARROW:FLIGHT:SQL:*`: catalog, schema and
/// table names, the contract's type name, precision and scale), and the
/// contract's `description` where it has one; the schema keeps the
/// table's description and primary key.
fn described(t: &mesh_service::VisibleTable) -> Schema {
    let fields: Vec<Field> = t
        .schema
        .fields()
        .iter()
        .map(|f| {
            let mut metadata = f.metadata().clone();
            let mut put = |key: &str, value: String| {
                metadata.insert(format!("ARROW:FLIGHT:SQL:{key}"), value);
            };
            put("CATALOG_NAME", mesh_service::query::CATALOG_NAME.into());
            put("DB_SCHEMA_NAME", t.domain.clone());
            put("TABLE_NAME", t.name.clone());
            if let Some(ty) = mesh_service::contract_type(f.data_type()) {
                put("TYPE_NAME", ty.to_string());
            }
            if let DataType::Decimal128(p, s) = f.data_type() {
                put("PRECISION", p.to_string());
                put("SCALE", s.to_string());
            }
            put("IS_READ_ONLY", "1".into());
            f.as_ref().clone().with_metadata(metadata)
        })
        .collect();
    Schema::new_with_metadata(fields, t.schema.metadata().clone())
}

/// Arrow IPC for `batches`, encoded as they arrive.
/// The batches travel in the wire schema (`mesh_service::wire_schema`),
/// the one GetFlightInfo announced.
fn encode(
    schema: SchemaRef,
    batches: impl Stream<Item = mesh_service::Result<datafusion::arrow::record_batch::RecordBatch>>
    + Send
    + 'static,
) -> Rows {
    let wire = mesh_service::wire_schema(&schema);
    let to = wire.clone();
    let batches = batches.map(move |b| {
        b.map_err(|e| FlightError::Tonic(Box::new(status(e))))
            .and_then(|b| mesh_service::to_wire(&b, &to).map_err(FlightError::Arrow))
    });
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(wire)
            .build(batches)
            .map_err(Status::from),
    )
}

/// One in-memory batch as a Flight stream (catalog answers).
fn one_batch(
    schema: SchemaRef,
    batch: Result<datafusion::arrow::record_batch::RecordBatch, impl std::fmt::Display>,
) -> Result<Response<Rows>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(stream::iter([Ok(batch)]))
            .map_err(Status::from),
    )))
}

/// A FlightInfo whose one endpoint's ticket is `ticket`.
fn info(
    schema: &Schema,
    ticket: impl ProstMessageExt,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
        )
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

fn unauthenticated() -> Status {
    Status::unauthenticated(
        "a mesh token is required: `authorization: Bearer mesh_…`, or Basic auth with the token as the password (create one with `mesh token create`)",
    )
}

/// A service error as a gRPC status, with the CLI's hint.
fn status(e: ServiceError) -> Status {
    let hint = e.hint();
    let message = match &e {
        ServiceError::Query(q) => q.to_string(),
        other => other.to_string(),
    };
    let message = match hint {
        Some(h) => format!("{message} (hint: {h})"),
        None => message,
    };
    use mesh_service::codes::GrpcCode as G;
    let code = match e.codes().grpc {
        G::InvalidArgument => tonic::Code::InvalidArgument,
        G::NotFound => tonic::Code::NotFound,
        G::PermissionDenied => tonic::Code::PermissionDenied,
        G::Unauthenticated => tonic::Code::Unauthenticated,
        G::FailedPrecondition => tonic::Code::FailedPrecondition,
        G::ResourceExhausted => tonic::Code::ResourceExhausted,
        G::DeadlineExceeded => tonic::Code::DeadlineExceeded,
        G::Cancelled => tonic::Code::Cancelled,
        G::Aborted => tonic::Code::Aborted,
        G::Unavailable => tonic::Code::Unavailable,
        G::DataLoss => tonic::Code::DataLoss,
        G::Internal => tonic::Code::Internal,
    };
    Status::new(code, message)
}

#[tonic::async_trait]
impl FlightSqlService for MeshFlightSql {
    type FlightService = MeshFlightSql;

    /// Basic auth (any user name, or the principal; the password is a mesh
    /// token): answers with the token as the bearer token to send next.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let token = if let Some(basic) = header.strip_prefix("Basic ") {
            // Padded or not: Go's Flight client sends it unpadded.
            let lenient = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            let decoded = lenient
                .decode(basic.trim())
                .map_err(|_| unauthenticated())?;
            let text = String::from_utf8(decoded).map_err(|_| unauthenticated())?;
            let (user, token) = text.split_once(':').ok_or_else(unauthenticated)?;
            let caller = self
                .mesh
                .authenticate_from(token, request.remote_addr().map(|a| a.ip()))
                .await
                .map_err(|_| unauthenticated())?;
            if !user.is_empty() && user != caller.name {
                self.mesh
                    .refuse_token_of_another(&caller, user, "flight")
                    .await
                    .map_err(status)?;
                return Err(Status::unauthenticated(format!(
                    "the token belongs to `{}`, not to `{user}`",
                    caller.name
                )));
            }
            token.to_string()
        } else {
            let caller = self.caller(&request).await?;
            tracing::debug!(
                principal = caller.name,
                "flight handshake with a bearer token"
            );
            header["Bearer ".len()..].trim().to_string()
        };
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(stream::iter([Ok(answer)])));
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| unauthenticated())?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        let planned = self
            .mesh
            .prepare(&caller, Statement::sql(&query.query))
            .await
            .map_err(|e| self.failed_planning(e))?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        info(
            &mesh_service::wire_schema(&planned.schema()),
            ticket,
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<Rows>, Status> {
        let caller = self.caller(&request).await?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("the ticket is not a statement"))?;
        self.rows(&caller, &sql, None).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        let planned = self
            .mesh
            .prepare(&caller, Statement::sql(&query.query))
            .await
            .map_err(|e| self.failed_planning(e))?;
        let params = Schema::new(
            planned
                .parameter_types()
                .map_err(status)?
                .into_iter()
                .enumerate()
                .map(|(i, ty)| {
                    Field::new(format!("${}", i + 1), ty.unwrap_or(DataType::Utf8), true)
                })
                .collect::<Vec<_>>(),
        );
        let options = IpcWriteOptions::default();
        let ipc = |schema: &Schema| -> Result<bytes::Bytes, Status> {
            let IpcMessage(bytes) = SchemaAsIpc::new(schema, &options).try_into().map_err(
                |e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()),
            )?;
            Ok(bytes)
        };
        let handle = self
            .prepared
            .create(&caller.name, query.query, Instant::now())?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: ipc(&mesh_service::wire_schema(&planned.schema()))?,
            parameter_schema: ipc(&params)?,
        })
    }

    /// Binds one row of parameter values to a prepared statement.
    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        self.statement(&query.prepared_statement_handle, &caller)?;
        let data = request
            .into_inner()
            .map_err(|e| FlightError::Tonic(Box::new(e)));
        let batches: Vec<_> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data)
                .try_collect()
                .await
                .map_err(|e| {
                    Status::invalid_argument(format!("cannot read the parameters: {e}"))
                })?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows > 1 {
            return Err(Status::invalid_argument(format!(
                "{rows} rows of parameters; bind one row at a time"
            )));
        }
        let values = match batches.iter().find(|b| b.num_rows() == 1) {
            Some(batch) => batch
                .columns()
                .iter()
                .map(|c| ScalarValue::try_from_array(c, 0).map(Into::into))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Status::invalid_argument(e.to_string()))?,
            None => Vec::new(),
        };
        self.prepared.bind(
            &query.prepared_statement_handle,
            &caller.name,
            (!values.is_empty()).then_some(ParamValues::List(values)),
            Instant::now(),
        )?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        let (sql, _) = self.statement(&query.prepared_statement_handle, &caller)?;
        let planned = self
            .mesh
            .prepare(&caller, Statement::sql(&sql))
            .await
            .map_err(|e| self.failed_planning(e))?;
        info(
            &mesh_service::wire_schema(&planned.schema()),
            query,
            request.into_inner(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<Rows>, Status> {
        let caller = self.caller(&request).await?;
        let (sql, params) = self.statement(&query.prepared_statement_handle, &caller)?;
        self.rows(&caller, &sql, params).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let caller = self.caller(&request).await?;
        self.prepared.close(
            &query.prepared_statement_handle,
            &caller.name,
            Instant::now(),
        )
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing(&schema, query, request).await
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<Rows>, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        builder.append(mesh_service::query::CATALOG_NAME);
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing(&schema, query, request).await
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<Rows>, Status> {
        let caller = self.caller(&request).await?;
        let mut domains: Vec<String> = self
            .tables(&caller)
            .await?
            .into_iter()
            .map(|t| t.domain)
            .collect();
        domains.dedup();
        let mut builder = query.into_builder();
        for d in domains {
            builder.append(mesh_service::query::CATALOG_NAME, d);
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing(&schema, query, request).await
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<Rows>, Status> {
        let caller = self.caller(&request).await?;
        let mut builder = query.into_builder();
        for t in self.tables(&caller).await? {
            builder
                .append(
                    mesh_service::query::CATALOG_NAME,
                    &t.domain,
                    &t.name,
                    "TABLE",
                    &described(&t),
                )
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        one_batch(builder.schema(), builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.listing(&table_types_schema(), query, request).await
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<Rows>, Status> {
        self.caller(&request).await?;
        let schema = Arc::new(table_types_schema());
        let batch = datafusion::arrow::record_batch::RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(datafusion::arrow::array::StringArray::from(vec![
                "TABLE",
            ]))],
        );
        one_batch(schema, batch)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.info).schema();
        self.listing(&schema, query, request).await
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<Rows>, Status> {
        self.caller(&request).await?;
        let builder = query.into_builder(&self.info);
        one_batch(builder.schema(), builder.build())
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<Rows>, Status> {
        Err(Status::unimplemented(format!(
            "{} is not supported: the mesh is read-only; run queries with CommandStatementQuery or a prepared statement",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

fn table_types_schema() -> Schema {
    Schema::new(vec![Field::new("table_type", DataType::Utf8, false)])
}

/// Serves Flight SQL on the connections a gate lets in, until `stop`.
pub async fn serve(
    rx: tokio::sync::mpsc::Receiver<crate::gate::Admitted>,
    service: MeshFlightSql,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), crate::ServerError> {
    tonic::transport::Server::builder()
        .trace_fn(request_span)
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(crate::gate::tonic_incoming(rx), stop.cancelled_owned())
        .await
        .map_err(|e| crate::ServerError::Start {
            what: "the Flight SQL server",
            message: e.to_string(),
        })
}

/// Every Flight SQL call's span: its request id (the client's
/// `x-request-id`, or a new one) and method, on every log line it makes.
fn request_span(req: &tonic::codegen::http::Request<()>) -> tracing::Span {
    let id = crate::request_id(
        req.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    tracing::info_span!("flight", request_id = %id, method = %req.uri().path())
}
