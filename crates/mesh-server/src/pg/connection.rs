//! Postgres connections: startup (a mesh token as the password), the
//! session each carries, and cancel requests.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion_postgres::pgwire;
use futures::Sink;
use mesh_service::{Caller, Mesh};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::{
    ClientInfo, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

use super::*;

/// One authenticated connection: its principal, its cancel signal and the
/// settings session that `SET`/`SHOW` act on.
pub(super) struct Session {
    pub(super) caller: Caller,
    pub(super) current: Mutex<(CancellationToken, mesh_service::Stop)>,
    pub(super) settings: SessionContext,
    pub(super) stopping: Arc<AtomicBool>,
    pub(super) catalog: PgCatalog,
    pub(super) cursors: super::statements::Cursors,
}

/// Why a statement may stop early, and the error it then ends with.
#[derive(Clone)]
pub(super) struct Interrupt {
    pub(super) token: CancellationToken,
    /// Ends the statement inside its plan, where the token cannot reach.
    pub(super) stop: mesh_service::Stop,
    pub(super) timed_out: Arc<AtomicBool>,
    pub(super) stopping: Arc<AtomicBool>,
}

impl Interrupt {
    pub(super) fn error(&self) -> PgWireError {
        if self.stopping.load(Ordering::SeqCst) {
            let mut info = ErrorInfo::new(
                "FATAL".into(),
                "57P01".into(),
                "terminating connection due to administrator command: the server is stopping"
                    .into(),
            );
            info.hint = Some("reconnect when the server is back".into());
            return PgWireError::UserError(Box::new(info));
        }
        user_error(
            "57014",
            if self.timed_out.load(Ordering::SeqCst) {
                "canceling statement due to statement timeout".into()
            } else {
                "canceling statement due to user request".into()
            },
            None,
        )
    }
}

impl Session {
    /// A fresh cancel signal for the statement about to run.
    pub(super) fn start(&self) -> Interrupt {
        let token = CancellationToken::new();
        let stop = mesh_service::Stop::default();
        if let Ok(mut current) = self.current.lock() {
            *current = (token.clone(), stop.clone());
        }
        Interrupt {
            token,
            stop,
            timed_out: Arc::default(),
            stopping: self.stopping.clone(),
        }
    }

    pub(super) fn cancel(&self) {
        if let Ok(current) = self.current.lock() {
            current.0.cancel();
            current.1.raise();
        }
    }
}

/// The open sessions by backend key, for cancel requests.
#[derive(Default)]
pub(super) struct Sessions {
    pub(super) open: Mutex<HashMap<BackendKey, Arc<Session>>>,
    pub(super) stopping: Arc<AtomicBool>,
}

impl Sessions {
    /// Cancels every running statement: the server is stopping.
    pub(super) fn shut_down(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(open) = self.open.lock() {
            for session in open.values() {
                session.cancel();
            }
        }
    }
}

/// A connection's process id and secret key, as a cancel request names it.
pub(super) type BackendKey = (i32, Vec<u8>);

/// Removes a session from [`Sessions`] when its connection ends.
pub(super) struct Registered {
    pub(super) key: BackendKey,
    pub(super) sessions: Arc<Sessions>,
    pub(super) metrics: Arc<Metrics>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.metrics.postgres_session(-1);
        if let Ok(mut open) = self.sessions.open.lock() {
            open.remove(&self.key);
        }
    }
}

/// Startup: the password is a mesh token, and the user name must be the
/// token's principal.
#[derive(Clone)]
pub(super) struct PgStartup {
    /// The client's address (the pgwire side sees only a socket pair).
    pub(super) peer: Option<std::net::IpAddr>,
    pub(super) mesh: Arc<Mesh>,
    pub(super) setup: Arc<PgSetup>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) sessions: Arc<Sessions>,
    /// Shared by every connection, so each gets its own backend pid.
    pub(super) keys: Arc<RandomPidSecretKeyGenerator>,
}

#[async_trait]
impl StartupHandler for PgStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt;
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let token = pwd.into_password()?.password;
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                let refused = |message: String| {
                    PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "28P01".into(),
                        message,
                    )))
                };
                let caller = self.mesh.authenticate_from(&token, self.peer).await.map_err(|_| {
                    refused(format!(
                        "password authentication failed for user \"{user}\": the password must be a mesh token (`mesh token create`)"
                    ))
                })?;
                if caller.name != user {
                    self.mesh
                        .refuse_token_of_another(&caller, &user, "postgres")
                        .await
                        .map_err(service_error)?;
                    return Err(refused(format!(
                        "the token belongs to \"{}\", not to user \"{user}\"; connect with -U {}",
                        caller.name, caller.name
                    )));
                }
                let catalog = self.setup.connection(&caller).map_err(|e| {
                    user_error("XX000", format!("cannot set up pg_catalog: {e}"), None)
                })?;
                let (pid, secret) = self.keys.generate(client);
                client.set_pid_and_secret_key(pid, secret.clone());
                let session = Arc::new(Session {
                    caller,
                    current: Mutex::new((CancellationToken::new(), mesh_service::Stop::default())),
                    settings: SessionContext::new(),
                    stopping: self.sessions.stopping.clone(),
                    catalog,
                    cursors: Default::default(),
                });
                let key = (pid, secret.to_bytes().to_vec());
                if let Ok(mut open) = self.sessions.open.lock() {
                    open.insert(key.clone(), session.clone());
                }
                client.session_extensions().insert(session);
                self.metrics.postgres_session(1);
                client.session_extensions().insert(Registered {
                    key,
                    sessions: self.sessions.clone(),
                    metrics: self.metrics.clone(),
                });
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.server_version = SERVER_VERSION.to_string();
                parameters.is_superuser = false;
                parameters.default_transaction_read_only = true;
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

pub(super) struct PgCancel {
    pub(super) sessions: Arc<Sessions>,
}

#[async_trait]
impl CancelHandler for PgCancel {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        let session = self
            .sessions
            .open
            .lock()
            .ok()
            .and_then(|open| open.get(&key).cloned());
        if let Some(session) = session {
            tracing::info!(pid = request.pid, "postgres cancel request");
            session.cancel();
        }
    }
}

pub(super) fn session<C: ClientInfo + ?Sized>(client: &C) -> PgWireResult<Arc<Session>> {
    client
        .session_extensions()
        .get::<Arc<Session>>()
        .map(|s| (*s).clone())
        .ok_or_else(|| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                "the connection is not authenticated".into(),
            )))
        })
}
