-- Meshwork catalog, version 1. Portable SQL: runs on SQLite and PostgreSQL.
-- Timestamps are RFC 3339 text in UTC; ids are UUID text.

CREATE TABLE deployments (
    id          TEXT COLLATE "C" PRIMARY KEY,
    deployed_at TEXT COLLATE "C" NOT NULL,
    deployed_by TEXT COLLATE "C" NOT NULL
);

-- The deployed definition of each product: the exact descriptor and SQL texts.
CREATE TABLE products (
    domain          TEXT COLLATE "C" NOT NULL,
    name            TEXT COLLATE "C" NOT NULL,
    version         TEXT COLLATE "C" NOT NULL,
    status          TEXT COLLATE "C" NOT NULL,
    owner           TEXT COLLATE "C" NOT NULL,
    descriptor_path TEXT COLLATE "C" NOT NULL,
    descriptor      TEXT COLLATE "C" NOT NULL,
    sql_texts       TEXT COLLATE "C" NOT NULL, -- JSON object: relative path -> SQL text
    deployment_id   TEXT COLLATE "C" NOT NULL REFERENCES deployments (id),
    deployed_at     TEXT COLLATE "C" NOT NULL,
    deployed_by     TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (domain, name)
);

-- Every change a deployment made, for the audit trail.
CREATE TABLE product_changes (
    deployment_id TEXT COLLATE "C" NOT NULL REFERENCES deployments (id),
    domain        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    version       TEXT COLLATE "C" NOT NULL,
    action        TEXT COLLATE "C" NOT NULL, -- created | updated
    PRIMARY KEY (deployment_id, domain, name)
);

-- Output ports, addressed in SQL as <domain>.<output>.
CREATE TABLE outputs (
    domain    TEXT COLLATE "C" NOT NULL,
    output    TEXT COLLATE "C" NOT NULL,
    product   TEXT COLLATE "C" NOT NULL,
    location  TEXT COLLATE "C" NOT NULL, -- table URL
    columns   TEXT COLLATE "C" NOT NULL, -- JSON array of {name, type, nullable}
    PRIMARY KEY (domain, output)
);

CREATE TABLE runs (
    id            TEXT COLLATE "C" PRIMARY KEY,
    domain        TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    version       TEXT COLLATE "C" NOT NULL,
    status        TEXT COLLATE "C" NOT NULL, -- running | succeeded | failed | skipped | interrupted
    started_at    TEXT COLLATE "C" NOT NULL,
    finished_at   TEXT COLLATE "C",
    duration_ms   BIGINT,
    rows_written  BIGINT,
    checks_passed BIGINT NOT NULL DEFAULT 0,
    checks_failed BIGINT NOT NULL DEFAULT 0,
    checks_warned BIGINT NOT NULL DEFAULT 0,
    error         TEXT COLLATE "C"
);
CREATE INDEX runs_by_product ON runs (domain, name, started_at);

CREATE TABLE check_results (
    run_id    TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    output    TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    kind      TEXT COLLATE "C" NOT NULL,
    severity  TEXT COLLATE "C" NOT NULL,
    passed    BOOLEAN NOT NULL,
    observed  TEXT COLLATE "C" NOT NULL,
    sample    TEXT COLLATE "C" NOT NULL, -- JSON array of offending rows
    PRIMARY KEY (run_id, output, name)
);

-- Each published table version: the release history of an output. The
-- newest row per output is what queries read.
CREATE TABLE publications (
    domain        TEXT COLLATE "C" NOT NULL,
    output        TEXT COLLATE "C" NOT NULL,
    table_version BIGINT NOT NULL,
    product_version TEXT COLLATE "C" NOT NULL,
    run_id        TEXT COLLATE "C" NOT NULL REFERENCES runs (id),
    row_count     BIGINT NOT NULL,
    published_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (domain, output, table_version)
);
