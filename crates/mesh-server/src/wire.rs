//! The guard in front of the Postgres protocol handler.
//!
//! Every Postgres connection passes through here before pgwire sees it:
//! the guard checks the framing of what the client sends (the startup
//! packet's length and protocol, each message's length) and answers a
//! malformed packet with a FATAL `ErrorResponse` instead of a silent
//! close, as PostgreSQL does. It also answers `SSLRequest` (with TLS when
//! the server has a certificate) and `GSSENCRequest`. Messages are
//! forwarded unchanged over an in-process socket pair; answers are copied
//! back untouched.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

/// PostgreSQL's own limit for a startup packet.
const MAX_STARTUP: usize = 10_000;
/// The largest message a client may send: a query or a Bind with its
/// parameter values.
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Messages up to this size are forwarded in one write.
const SMALL: usize = 64 * 1024;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// How long a client has to finish its TLS handshake.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);
const PROTOCOL_3_0: u32 = 196_608;
const PROTOCOL_3_2: u32 = 196_610;

/// A framing error, answered to the client before the connection closes.
#[derive(Debug)]
struct Violation {
    code: &'static str,
    message: String,
    hint: Option<&'static str>,
}

/// The `ErrorResponse` for `v`.
fn error_response(v: &Violation) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', v.code),
        (b'M', v.message.as_str()),
    ]
    .into_iter()
    .chain(v.hint.map(|h| (b'H', h)))
    {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Serves one client connection: negotiates encryption, then forwards
/// well-formed messages to `handler` (pgwire's side of a socket pair).
///
/// The client has `startup_timeout` from connecting to send its startup
/// packet and its first message after it (the password): a client that
/// connects and stays silent cannot hold a connection slot.
pub async fn guard<S>(
    mut client: S,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: UnixStream,
    startup_timeout: std::time::Duration,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + startup_timeout;
    // Encryption requests come before the startup packet.
    loop {
        let header = match tokio::time::timeout_at(deadline, read_startup_header(&mut client)).await
        {
            Ok(header) => header?,
            Err(_) => return refuse(&mut client, &too_slow(startup_timeout)).await,
        };
        let (len, code) = match header {
            Ok(header) => header,
            Err(v) => return refuse(&mut client, &v).await,
        };
        match code {
            SSL_REQUEST if len == 8 => match &tls {
                Some(acceptor) => {
                    client.write_all(b"S").await?;
                    let secured = tokio::time::timeout(HANDSHAKE, acceptor.accept(client))
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                        })??;
                    return Box::pin(after_encryption(
                        secured,
                        handler,
                        deadline,
                        startup_timeout,
                    ))
                    .await;
                }
                None => client.write_all(b"N").await?,
            },
            GSSENC_REQUEST if len == 8 => client.write_all(b"N").await?,
            // With TLS configured, a password never crosses in the clear;
            // a cancel request carries none and may (libpq sends it plain).
            code if tls.is_some() && code != CANCEL_REQUEST => {
                let v = Violation {
                    code: "28000",
                    message: "this server accepts encrypted connections only".into(),
                    hint: Some(
                        "connect with sslmode=require (or verify-full with the server's CA)",
                    ),
                };
                return refuse(&mut client, &v).await;
            }
            _ => return start(client, len, code, handler, (deadline, startup_timeout)).await,
        }
    }
}

/// The answer to a client that did not start in time.
fn too_slow(limit: std::time::Duration) -> Violation {
    Violation {
        code: "08P01",
        message: format!(
            "the client did not send its startup and password within {} s",
            limit.as_secs_f64()
        ),
        hint: None,
    }
}

/// Refuses a connection over the server's cap, as PostgreSQL does.
pub async fn too_many_connections<S>(client: &mut S) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let v = Violation {
        code: "53300",
        message: "sorry, too many clients already".into(),
        hint: Some("try again later; the server's cap is `limits.pg_connections`"),
    };
    refuse(client, &v).await
}

/// After TLS: the startup packet, then messages.
async fn after_encryption<S>(
    mut client: S,
    handler: UnixStream,
    deadline: tokio::time::Instant,
    limit: std::time::Duration,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let header = match tokio::time::timeout_at(deadline, read_startup_header(&mut client)).await {
        Ok(header) => header?,
        Err(_) => return refuse(&mut client, &too_slow(limit)).await,
    };
    match header {
        Ok((len, code)) => start(client, len, code, handler, (deadline, limit)).await,
        Err(v) => refuse(&mut client, &v).await,
    }
}

/// The startup packet's length and code, or what is wrong with them.
async fn read_startup_header<S>(client: &mut S) -> io::Result<Result<(usize, u32), Violation>>
where
    S: AsyncRead + Unpin,
{
    let mut header = [0u8; 8];
    client.read_exact(&mut header).await?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let code = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if !(8..=MAX_STARTUP).contains(&len) {
        return Ok(Err(Violation {
            code: "08P01",
            message: format!("invalid length of startup packet: {len} (8 to {MAX_STARTUP} bytes)"),
            hint: None,
        }));
    }
    Ok(Ok((len, code)))
}

/// Checks the startup packet's protocol, forwards it, then relays.
async fn start<S>(
    mut client: S,
    len: usize,
    code: u32,
    mut handler: UnixStream,
    startup: (tokio::time::Instant, std::time::Duration),
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let accepted = matches!(code, PROTOCOL_3_0 | PROTOCOL_3_2 | CANCEL_REQUEST)
        || (code >> 16 == 3 && len > 8);
    if !accepted {
        let v = Violation {
            code: "0A000",
            message: format!(
                "unsupported frontend protocol {}.{}: the server supports 3.0 to 3.2",
                code >> 16,
                code & 0xffff
            ),
            hint: None,
        };
        return refuse(&mut client, &v).await;
    }
    let mut body = vec![0u8; len - 8];
    match tokio::time::timeout_at(startup.0, client.read_exact(&mut body)).await {
        Ok(read) => {
            read?;
        }
        Err(_) => return refuse(&mut client, &too_slow(startup.1)).await,
    }
    handler.write_all(&(len as u32).to_be_bytes()).await?;
    handler.write_all(&code.to_be_bytes()).await?;
    handler.write_all(&body).await?;
    // A cancel request is all the client sends.
    let first = (code != CANCEL_REQUEST).then_some(startup);
    relay(client, handler, first).await
}

/// Forwards client messages after checking their lengths, and copies
/// answers back. On a malformed message, the handler's side is closed,
/// its last answers are delivered, and then the error.
async fn relay<S>(
    client: S,
    handler: UnixStream,
    startup: Option<(tokio::time::Instant, std::time::Duration)>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let (mut from_handler, mut to_handler) = handler.into_split();
    let mut answers = tokio::spawn(async move {
        let copied = tokio::io::copy(&mut from_handler, &mut to_client).await;
        (to_client, copied)
    });
    // The handler may close first (after a cancel request, a Terminate or
    // a fatal error): then the client is let go too.
    let outcome = tokio::select! {
        outcome = forward(&mut from_client, &mut to_handler, startup) => outcome,
        done = &mut answers => {
            let (mut to_client, _) =
                done.map_err(|e| io::Error::other(format!("relay task failed: {e}")))?;
            return to_client.shutdown().await;
        }
    };
    let _ = to_handler.shutdown().await;
    drop(to_handler);
    let (mut to_client, _) = answers
        .await
        .map_err(|e| io::Error::other(format!("relay task failed: {e}")))?;
    match outcome {
        Ok(None) | Err(_) => to_client.shutdown().await,
        Ok(Some(v)) => {
            tracing::info!("postgres client sent a malformed message: {}", v.message);
            to_client.write_all(&error_response(&v)).await?;
            to_client.shutdown().await
        }
    }
}

/// Forwards messages until the client closes (`None`) or breaks framing.
/// The first message (the password) must arrive by `startup`'s deadline.
async fn forward<R, W>(
    from: &mut R,
    to: &mut W,
    mut startup: Option<(tokio::time::Instant, std::time::Duration)>,
) -> io::Result<Option<Violation>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut header = [0u8; 5];
    loop {
        let read = match startup.take() {
            Some((deadline, limit)) => {
                match tokio::time::timeout_at(deadline, from.read_exact(&mut header)).await {
                    Ok(read) => read,
                    Err(_) => return Ok(Some(too_slow(limit))),
                }
            }
            None => from.read_exact(&mut header).await,
        };
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if !(4..=MAX_MESSAGE).contains(&len) {
            return Ok(Some(Violation {
                code: "08P01",
                message: format!(
                    "invalid message length {len} for message type '{}' (4 to {MAX_MESSAGE} bytes)",
                    char::from(header[0]).escape_default()
                ),
                hint: None,
            }));
        }
        let body = len - 4;
        if body <= SMALL {
            // One write per message: most messages are small.
            let mut message = Vec::with_capacity(5 + body);
            message.extend_from_slice(&header);
            message.resize(5 + body, 0);
            match from.read_exact(&mut message[5..]).await {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            to.write_all(&message).await?;
        } else {
            to.write_all(&header).await?;
            let copied = tokio::io::copy(&mut from.take(body as u64), to).await?;
            if copied < body as u64 {
                return Ok(None);
            }
        }
        // Terminate: the client is done.
        if header[0] == b'X' {
            return Ok(None);
        }
    }
}

async fn refuse<S>(client: &mut S, v: &Violation) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    tracing::info!("postgres client refused: {}", v.message);
    client.write_all(&error_response(v)).await?;
    client.shutdown().await
}
