-- Breaking contract changes deployed with --allow-breaking: who, when,
-- what broke and whom it broke. Written in the deployment's transaction.
CREATE TABLE contract_overrides (
    deployment_id TEXT COLLATE "C" NOT NULL REFERENCES deployments (id),
    domain        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    from_version  TEXT COLLATE "C" NOT NULL,
    to_version    TEXT COLLATE "C" NOT NULL,
    overridden_by TEXT COLLATE "C" NOT NULL,
    overridden_at TEXT COLLATE "C" NOT NULL,
    changes       TEXT COLLATE "C" NOT NULL, -- JSON array of change descriptions
    consumers     TEXT COLLATE "C" NOT NULL  -- JSON array of broken consumer outputs
);
CREATE INDEX contract_overrides_by_product ON contract_overrides (domain, name);
