//! Flight SQL's prepared statements, held between calls.
//!
//! Flight SQL has no sessions: a prepared statement lives on the server
//! until its client closes it. Clients that crash or forget would make
//! that forever, so a statement unused for [`IDLE`] is dropped, and a
//! principal holds at most [`PER_OWNER`] at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use datafusion::common::ParamValues;
use tonic::Status;

/// How long a prepared statement may go unused before it is dropped.
pub const IDLE: Duration = Duration::from_secs(60 * 60);
/// How many prepared statements one principal may hold open.
pub const PER_OWNER: usize = 256;

/// A statement prepared over Flight SQL: its SQL, who prepared it, the
/// parameter values bound to it, and when it was last used.
struct Prepared {
    sql: String,
    owner: String,
    params: Option<ParamValues>,
    used: Instant,
}

#[derive(Default)]
pub struct PreparedStatements {
    held: Mutex<HashMap<String, Prepared>>,
}

impl PreparedStatements {
    fn held(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Prepared>>, Status> {
        self.held
            .lock()
            .map_err(|_| Status::internal("prepared statements poisoned"))
    }

    /// Holds `sql` for `owner` under a new handle, once statements idle
    /// since before `now - IDLE` are dropped. Refused when `owner` already
    /// holds [`PER_OWNER`].
    pub fn create(&self, owner: &str, sql: String, now: Instant) -> Result<String, Status> {
        let mut held = self.held()?;
        held.retain(|_, p| now.saturating_duration_since(p.used) < IDLE);
        if held.values().filter(|p| p.owner == owner).count() >= PER_OWNER {
            return Err(Status::resource_exhausted(format!(
                "`{owner}` holds {PER_OWNER} open prepared statements, the most allowed; \
                 close unused ones with ClosePreparedStatement (statements unused for {} min \
                 are closed by the server)",
                IDLE.as_secs() / 60
            )));
        }
        let handle = uuid::Uuid::new_v4().to_string();
        held.insert(
            handle.clone(),
            Prepared {
                sql,
                owner: owner.to_string(),
                params: None,
                used: now,
            },
        );
        Ok(handle)
    }

    /// `owner`'s live statement `handle` in `held`, marked used at `now`.
    fn live<'a>(
        held: &'a mut HashMap<String, Prepared>,
        handle: &str,
        owner: &str,
        now: Instant,
    ) -> Result<&'a mut Prepared, Status> {
        match held.get_mut(handle) {
            Some(p) if p.owner == owner && now.saturating_duration_since(p.used) < IDLE => {
                p.used = now;
                Ok(p)
            }
            _ => Err(Status::not_found(format!(
                "no prepared statement `{handle}` for `{owner}` (statements unused for {} min \
                 are closed); create one with CreatePreparedStatement",
                IDLE.as_secs() / 60
            ))),
        }
    }

    /// The SQL and bound values of `owner`'s statement `handle`, which
    /// counts as a use.
    pub fn get(
        &self,
        handle: &[u8],
        owner: &str,
        now: Instant,
    ) -> Result<(String, Option<ParamValues>), Status> {
        let mut held = self.held()?;
        let p = Self::live(&mut held, &String::from_utf8_lossy(handle), owner, now)?;
        Ok((p.sql.clone(), p.params.clone()))
    }

    /// Binds `params` to `owner`'s statement `handle`.
    pub fn bind(
        &self,
        handle: &[u8],
        owner: &str,
        params: Option<ParamValues>,
        now: Instant,
    ) -> Result<(), Status> {
        let mut held = self.held()?;
        Self::live(&mut held, &String::from_utf8_lossy(handle), owner, now)?.params = params;
        Ok(())
    }

    /// Closes `owner`'s statement `handle`.
    pub fn close(&self, handle: &[u8], owner: &str, now: Instant) -> Result<(), Status> {
        let handle = String::from_utf8_lossy(handle);
        let mut held = self.held()?;
        Self::live(&mut held, &handle, owner, now)?;
        held.remove(handle.as_ref());
        Ok(())
    }

    /// How many statements are held, all principals together.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_the_owners_and_outlive_no_idle_hour() {
        let held = PreparedStatements::default();
        let t0 = Instant::now();
        let a = held.create("ana", "SELECT 1".into(), t0).unwrap();
        assert_eq!(held.get(a.as_bytes(), "ana", t0).unwrap().0, "SELECT 1");
        let e = held.get(a.as_bytes(), "bob", t0).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);

        // Used just before the hour is up: kept, and the hour restarts.
        let t1 = t0 + IDLE - Duration::from_secs(1);
        held.get(a.as_bytes(), "ana", t1).unwrap();
        let t2 = t1 + IDLE - Duration::from_secs(1);
        held.get(a.as_bytes(), "ana", t2).unwrap();
        // Then a full hour unused: gone for its owner, and swept from
        // memory by the next create.
        let t3 = t2 + IDLE;
        let e = held.get(a.as_bytes(), "ana", t3).unwrap_err();
        assert!(e.message().contains("unused for 60 min"), "{}", e.message());
        held.create("bob", "SELECT 2".into(), t3).unwrap();
        assert_eq!(held.len(), 1);
    }

    #[test]
    fn a_principal_holds_a_bounded_number_and_closing_frees_one() {
        let held = PreparedStatements::default();
        let t = Instant::now();
        let handles: Vec<String> = (0..PER_OWNER)
            .map(|i| held.create("ana", format!("SELECT {i}"), t).unwrap())
            .collect();
        let e = held.create("ana", "SELECT 0".into(), t).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("ClosePreparedStatement"));
        // Others are not held up by ana's statements.
        held.create("bob", "SELECT 1".into(), t).unwrap();
        // Someone else cannot close ana's statement.
        assert!(held.close(handles[0].as_bytes(), "bob", t).is_err());
        held.close(handles[0].as_bytes(), "ana", t).unwrap();
        held.create("ana", "SELECT 0".into(), t).unwrap();
        assert_eq!(held.len(), PER_OWNER + 1);
    }

    #[test]
    fn bound_values_stay_with_their_statement() {
        let held = PreparedStatements::default();
        let t = Instant::now();
        let a = held.create("ana", "SELECT $1".into(), t).unwrap();
        let values =
            ParamValues::List(vec![datafusion::scalar::ScalarValue::Int64(Some(7)).into()]);
        held.bind(a.as_bytes(), "ana", Some(values), t).unwrap();
        assert!(held.get(a.as_bytes(), "ana", t).unwrap().1.is_some());
        assert!(held.bind(a.as_bytes(), "bob", None, t).is_err());
        assert!(held.get(a.as_bytes(), "ana", t).unwrap().1.is_some());
    }
}
