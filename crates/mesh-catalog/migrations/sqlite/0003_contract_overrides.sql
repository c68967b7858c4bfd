-- Breaking contract changes deployed with --allow-breaking: who, when,
-- what broke and whom it broke. Written in the deployment's transaction.
CREATE TABLE contract_overrides (
    deployment_id TEXT NOT NULL REFERENCES deployments (id),
    domain        TEXT NOT NULL,
    name          TEXT NOT NULL,
    from_version  TEXT NOT NULL,
    to_version    TEXT NOT NULL,
    overridden_by TEXT NOT NULL,
    overridden_at TEXT NOT NULL,
    changes       TEXT NOT NULL, -- JSON array of change descriptions
    consumers     TEXT NOT NULL  -- JSON array of broken consumer outputs
);
CREATE INDEX contract_overrides_by_product ON contract_overrides (domain, name);
