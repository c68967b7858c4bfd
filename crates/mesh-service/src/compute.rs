//! Statements of a server are computed on their own runtime.
//!
//! DataFusion's operators run for as long as they have input, yielding
//! only now and then; on the runtime that serves connections they would
//! keep it from accepting, authenticating, answering other clients and
//! even reading a cancel request while a heavy statement runs. So each
//! statement is started and driven on a separate multi-threaded runtime
//! (one worker per core, named `mesh-compute`), and its batches cross to
//! the caller through a small channel. The operating system shares the
//! cores between both runtimes, so a connection is always served.
//!
//! A one-shot command (`mesh query`) serves no connection, so it runs
//! its statement where it reads it: a second runtime would only add its
//! threads to every start. Servers call [`separate`] before they accept.
//!
//! Dropping the stream closes the channel: the driving task ends at its
//! next send, dropping the plan (and the statement's `Stop` is raised by
//! `QueryStream`, so work inside a batch ends too).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// The same stack size as the binary's own workers: expression
/// evaluation recurses as deep as planning does.
const STACK: usize = 64 * 1024 * 1024;

static SEPARATE: AtomicBool = AtomicBool::new(false);

/// Computes every later statement of this process on the compute
/// runtime, started now so a server's first statement does not pay for it.
pub fn separate() {
    SEPARATE.store(true, Ordering::Relaxed);
    let _ = runtime();
}

/// The compute runtime, or `None` where it cannot be started (then
/// statements run where they are read, as one-shot commands do).
fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let workers = std::thread::available_parallelism().map_or(2, usize::from);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("mesh-compute")
                .thread_stack_size(STACK)
                .enable_all()
                .build()
                .map_err(|e| tracing::warn!("cannot start the compute runtime: {e}"))
                .ok()
        })
        .as_ref()
}

/// Executes `plan` on the compute runtime; its batches arrive on the
/// returned stream.
pub fn execute(
    plan: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
) -> Result<SendableRecordBatchStream, DataFusionError> {
    let runtime = SEPARATE.load(Ordering::Relaxed).then(runtime).flatten();
    let Some(runtime) = runtime else {
        return datafusion::physical_plan::execute_stream(plan, context);
    };
    let schema = plan.schema();
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    runtime.spawn(async move {
        // Started here, so the tasks operators spawn run here too.
        let mut stream = match datafusion::physical_plan::execute_stream(plan, context) {
            Ok(stream) => stream,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        while let Some(item) = stream.next().await {
            if tx.send(item).await.is_err() {
                // The reader is gone.
                return;
            }
        }
    });
    let batches = futures::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item, rx))
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}
