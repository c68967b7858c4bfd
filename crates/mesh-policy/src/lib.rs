//! Federated computational governance: policies written in Rego, evaluated
//! with `regorus`, and the decisions they produce.
//!
//! Global policies live in the mesh's `policies/` folder and decide under
//! package `mesh.access` (who may read what, and how). A domain may add
//! policies for its own products in `<domain>/policies/`, under package
//! `mesh.domain.<domain>`; they are evaluated in an engine of their own and
//! can only add restrictions (denials, masks, row filters), never grant:
//! that is how a domain cannot weaken a global deny. Deploy-time rules on
//! descriptors decide under `mesh.deploy` (and `mesh.domain.<domain>.deploy`).
//! See `docs/governance.md`.

mod decision;
mod deploy;
mod error;
mod pack;
mod policies;
mod token;

pub use decision::{
    AccessInput, ColumnInput, Decision, GrantInput, Mask, PrincipalInput, ProductInput,
};
pub use deploy::{Violation, deploy_input};
pub use error::{PolicyError, Result};
pub use pack::{
    DEFAULT_ACCESS_POLICY, DEFAULT_ACCESS_TESTS, DEFAULT_DEPLOY_POLICY, DEFAULT_DEPLOY_TESTS,
    default_pack, write_default_pack,
};
pub use policies::{PolicySet, PolicySources, TestOutcome};
pub use token::{NewToken, hash_secret, new_token, parse_token, secret_digest, verify_secret};
