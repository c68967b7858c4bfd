-- Meshwork catalog, version 1. Portable SQL: runs on SQLite and PostgreSQL.
-- Timestamps are RFC 3339 text in UTC; ids are UUID text.

CREATE TABLE deployments (
    id          TEXT PRIMARY KEY,
    deployed_at TEXT NOT NULL,
    deployed_by TEXT NOT NULL
);

-- The deployed definition of each product: the exact descriptor and SQL texts.
CREATE TABLE products (
    domain          TEXT NOT NULL,
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    status          TEXT NOT NULL,
    owner           TEXT NOT NULL,
    descriptor_path TEXT NOT NULL,
    descriptor      TEXT NOT NULL,
    sql_texts       TEXT NOT NULL, -- JSON object: relative path -> SQL text
    deployment_id   TEXT NOT NULL REFERENCES deployments (id),
    deployed_at     TEXT NOT NULL,
    deployed_by     TEXT NOT NULL,
    PRIMARY KEY (domain, name)
);

-- Every change a deployment made, for the audit trail.
CREATE TABLE product_changes (
    deployment_id TEXT NOT NULL REFERENCES deployments (id),
    domain        TEXT NOT NULL,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    action        TEXT NOT NULL, -- created | updated
    PRIMARY KEY (deployment_id, domain, name)
);

-- Output ports, addressed in SQL as <domain>.<output>.
CREATE TABLE outputs (
    domain    TEXT NOT NULL,
    output    TEXT NOT NULL,
    product   TEXT NOT NULL,
    location  TEXT NOT NULL, -- table URL
    columns   TEXT NOT NULL, -- JSON array of {name, type, nullable}
    PRIMARY KEY (domain, output)
);

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    domain        TEXT NOT NULL,
    name          TEXT NOT NULL,
    version       TEXT NOT NULL,
    status        TEXT NOT NULL, -- running | succeeded | failed | skipped | interrupted
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    duration_ms   BIGINT,
    rows_written  BIGINT,
    checks_passed INTEGER NOT NULL DEFAULT 0,
    checks_failed INTEGER NOT NULL DEFAULT 0,
    checks_warned INTEGER NOT NULL DEFAULT 0,
    error         TEXT
);
CREATE INDEX runs_by_product ON runs (domain, name, started_at);

CREATE TABLE check_results (
    run_id    TEXT NOT NULL REFERENCES runs (id),
    output    TEXT NOT NULL,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    severity  TEXT NOT NULL,
    passed    BOOLEAN NOT NULL,
    observed  TEXT NOT NULL,
    sample    TEXT NOT NULL, -- JSON array of offending rows
    PRIMARY KEY (run_id, output, name)
);

-- Each published table version: the release history of an output. The
-- newest row per output is what queries read.
CREATE TABLE publications (
    domain        TEXT NOT NULL,
    output        TEXT NOT NULL,
    table_version BIGINT NOT NULL,
    product_version TEXT NOT NULL,
    run_id        TEXT NOT NULL REFERENCES runs (id),
    row_count     BIGINT NOT NULL,
    published_at  TEXT NOT NULL,
    PRIMARY KEY (domain, output, table_version)
);
