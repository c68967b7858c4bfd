//! The catalog store interface. The binary wires in a real backend.

use async_trait::async_trait;
use mesh_spec::{DomainName, OutputName, ProductRef};

use crate::error::Result;
use crate::model::*;

/// Metadata about products, outputs, runs and releases.
///
/// Invariant: every method that changes more than one row does so in one
/// transaction, so a failure leaves the catalog exactly as it was.
#[async_trait]
pub trait CatalogStore:
    crate::identity::IdentityStore
    + crate::classes::ClassificationStore
    + crate::caches::CacheStore
    + crate::retention::RetentionStore
    + crate::runs::RunStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Registers or updates products atomically. Products whose definition
    /// is unchanged are left alone; if nothing changed, no deployment is recorded.
    /// Overrides of the contract gate are recorded in the same transaction.
    async fn deploy(
        &self,
        by: &str,
        products: Vec<ProductRecord>,
        overrides: Vec<ContractOverride>,
    ) -> Result<DeployOutcome>;

    /// Recorded overrides of the contract gate for a product, newest first.
    async fn overrides(&self, product: &ProductRef) -> Result<Vec<ContractOverride>>;

    /// Retires a deployed product (recorded as a deployment by `by`).
    /// Returns whether the product existed.
    async fn retire(&self, product: &ProductRef, by: &str) -> Result<bool>;

    /// Marks a deployed product deprecated, with an optional sunset date
    /// (recorded as a deployment by `by`). Returns whether it existed.
    async fn deprecate(
        &self,
        product: &ProductRef,
        sunset: Option<chrono::NaiveDate>,
        by: &str,
    ) -> Result<bool>;

    /// Every deployed product, ordered by domain and name.
    async fn products(&self) -> Result<Vec<ProductRecord>>;

    /// A number that changes whenever a deployed product or its outputs
    /// change, in any process; equal numbers mean `products()` is unchanged.
    async fn deployment_generation(&self) -> Result<i64>;

    /// The catalog's change counters, in one statement.
    async fn generations(&self) -> Result<crate::Generations>;

    /// One deployed product.
    async fn product(&self, product: &ProductRef) -> Result<Option<ProductRecord>>;

    /// Every output, ordered by domain and output.
    async fn outputs(&self) -> Result<Vec<OutputRecord>>;

    /// The outputs of one domain.
    async fn domain_outputs(&self, domain: &DomainName) -> Result<Vec<OutputRecord>>;

    /// The domains that have at least one output.
    async fn domains(&self) -> Result<Vec<DomainName>>;

    /// One output by its SQL name.
    async fn output(
        &self,
        domain: &DomainName,
        output: &OutputName,
    ) -> Result<Option<OutputRecord>>;

    /// The lifecycle status (`active`, `deprecated`, …) of every product.
    async fn product_statuses(&self) -> Result<Vec<(ProductRef, String)>>;

    /// The newest publication of an output: what queries read.
    async fn current_publication(
        &self,
        domain: &DomainName,
        output: &OutputName,
    ) -> Result<Option<Publication>>;

    /// Every publication of an output, newest first.
    async fn publications(
        &self,
        domain: &DomainName,
        output: &OutputName,
    ) -> Result<Vec<Publication>>;
}
