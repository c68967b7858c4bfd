//! The CLI as a client of `mesh serve`: with `--server URL` (or
//! `MESH_SERVER`) and a token, `mesh query`, `mesh catalog …` and
//! `mesh runs` call the REST API instead of opening the local state
//! directory, and print exactly what they print locally.

use std::fmt;

use futures::StreamExt;
use mesh_service::arrow::array::RecordBatch;
use mesh_service::arrow::buffer::Buffer;
use mesh_service::arrow::datatypes::SchemaRef;
use mesh_service::arrow::ipc::reader::StreamDecoder;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the server is and who is asking.
pub struct Remote {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An error the server answered with: its problem details.
#[derive(Debug)]
pub struct RemoteError {
    pub status: u16,
    pub detail: String,
    pub hint: Option<String>,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (the server answered {})", self.detail, self.status)
    }
}

impl std::error::Error for RemoteError {}

/// A page of a list endpoint.
#[derive(serde::Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_offset: Option<usize>,
}

impl Remote {
    /// A client of the server at `base` (`http://…` or `https://…`), with
    /// an extra trusted CA certificate (PEM) for a private TLS setup.
    pub fn new(
        base: &str,
        token: Option<String>,
        ca_cert: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("--server `{base}` is not a URL such as http://127.0.0.1:8080");
        }
        let Some(token) = token.filter(|t| !t.trim().is_empty()) else {
            anyhow::bail!(
                "--server needs a token: pass --token or set MESH_TOKEN (create one with `mesh token create`)"
            );
        };
        let mut builder =
            reqwest::Client::builder().user_agent(concat!("mesh/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read --ca-cert {}: {e}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!("--ca-cert {} is not a PEM certificate: {e}", path.display())
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up the HTTP client: {e}"))?;
        Ok(Remote {
            base,
            token: token.trim().to_string(),
            http,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let res = req.bearer_auth(&self.token).send().await.map_err(|e| {
            // reqwest's message is generic; the cause says what failed
            // (refused, TLS, certificate).
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why = format!("{why}: {s}");
                source = s.source();
            }
            anyhow::anyhow!("cannot reach the server at {}: {why}", self.base)
        })?;
        if res.status().is_success() {
            return Ok(res);
        }
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let detail = problem["detail"]
            .as_str()
            .map_or_else(|| text.trim().to_string(), str::to_string);
        Err(RemoteError {
            status,
            detail,
            hint: problem["hint"].as_str().map(str::to_string),
        }
        .into())
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let res = self
            .send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await?;
        let bytes = res.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!("the server's answer to {path} is not what this mesh expects: {e}")
        })
    }

    /// The items of a paginated list, page by page, at most `max` of them.
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        max: usize,
    ) -> anyhow::Result<Vec<T>> {
        let mut all = Vec::new();
        let mut offset = 0usize;
        while all.len() < max {
            let mut q = query.to_vec();
            q.push(("limit", (max - all.len()).min(1000).to_string()));
            q.push(("offset", offset.to_string()));
            let page: Page<T> = self.get_json(path, &q).await?;
            all.extend(page.items);
            match page.next_offset {
                Some(next) if next > offset => offset = next,
                _ => break,
            }
        }
        Ok(all)
    }

    /// `GET` a single JSON document.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.get_json(path, &[]).await
    }

    /// `GET` a single JSON document with query parameters.
    pub async fn get_with<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.get_json(path, query).await
    }

    /// Runs `sql` on the server and decodes its Arrow IPC answer as it
    /// arrives.
    pub async fn query(&self, sql: &str) -> anyhow::Result<RemoteRows> {
        let body = serde_json::json!({ "sql": sql }).to_string();
        let res = self
            .send(
                self.http
                    .post(format!("{}/api/v1/query", self.base))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(
                        reqwest::header::ACCEPT,
                        "application/vnd.apache.arrow.stream",
                    )
                    .body(body),
            )
            .await?;
        let warnings = res
            .headers()
            .get_all("x-mesh-warning")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let mut rows = RemoteRows {
            body: Box::pin(res.bytes_stream()),
            decoder: StreamDecoder::new(),
            pending: Buffer::from_vec(Vec::<u8>::new()),
            warnings,
            schema: None,
            early: None,
            ended: false,
        };
        rows.schema = Some(rows.read_schema().await?);
        Ok(rows)
    }
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// The rows of a remote query, decoded batch by batch.
pub struct RemoteRows {
    body: ByteStream,
    decoder: StreamDecoder,
    pending: Buffer,
    pub warnings: Vec<String>,
    schema: Option<SchemaRef>,
    /// Rows decoded with the schema, not yet handed out.
    early: Option<RecordBatch>,
    ended: bool,
}

impl RemoteRows {
    pub fn schema(&self) -> SchemaRef {
        self.schema
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(mesh_service::arrow::datatypes::Schema::empty()))
    }

    async fn read_schema(&mut self) -> anyhow::Result<SchemaRef> {
        // The first chunk may hold the first rows after the schema.
        self.early = self.decode(true).await?;
        self.decoder
            .schema()
            .ok_or_else(|| anyhow::anyhow!("the server's answer ended before its schema"))
    }

    /// Decodes what is buffered, reading more of the body when needed:
    /// the next batch, or `None` at the end of the stream (or, with
    /// `until_schema`, as soon as the schema is known).
    async fn decode(&mut self, until_schema: bool) -> anyhow::Result<Option<RecordBatch>> {
        loop {
            while !self.pending.is_empty() {
                if let Some(batch) = self.decoder.decode(&mut self.pending)? {
                    return Ok(Some(batch));
                }
                if until_schema && self.decoder.schema().is_some() {
                    return Ok(None);
                }
            }
            if self.ended || (until_schema && self.decoder.schema().is_some()) {
                return Ok(None);
            }
            match self.body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| {
                        anyhow::anyhow!(
                            "the server's answer broke off: {e}; the rows are incomplete"
                        )
                    })?;
                    self.pending = Buffer::from(chunk.to_vec());
                }
                None => {
                    self.ended = true;
                    self.decoder.finish().map_err(|e| {
                        anyhow::anyhow!(
                            "the server's answer ended early ({e}); the rows are incomplete"
                        )
                    })?;
                }
            }
        }
    }

    /// The next batch, or `None` at the end.
    pub async fn next(&mut self) -> Option<anyhow::Result<RecordBatch>> {
        if let Some(batch) = self.early.take() {
            return Some(Ok(batch));
        }
        self.decode(false).await.transpose()
    }
}
