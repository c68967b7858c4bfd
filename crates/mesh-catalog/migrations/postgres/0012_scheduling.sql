-- Scheduling (docs/operations.md). Portable SQL: runs on SQLite and PostgreSQL.
-- Times in the new tables are milliseconds since the Unix epoch.

-- Why a run started (manual | cron | upstream | retry | backfill), which
-- attempt it is, the fingerprint of what it read (JSON: definition,
-- upstream versions, source files), and its timeline and log (JSON).
ALTER TABLE runs ADD COLUMN cause TEXT COLLATE "C" NOT NULL DEFAULT 'manual';
ALTER TABLE runs ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN inputs TEXT COLLATE "C";
ALTER TABLE runs ADD COLUMN timeline TEXT COLLATE "C";
CREATE INDEX runs_by_status ON runs (status, started_at);

-- The lease of every run in progress: the process holding it and until
-- when (extended by a heartbeat). One per product, so two processes never
-- run the same product at once; a lease whose holder died or expired is
-- recovered by whoever finds it. Kept apart from `runs` so heartbeats do
-- not move the activity generation.
CREATE TABLE run_leases (
    run_id      TEXT COLLATE "C" PRIMARY KEY REFERENCES runs (id),
    domain      TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    holder      TEXT COLLATE "C" NOT NULL,
    lease_until BIGINT NOT NULL,
    UNIQUE (domain, name)
);

-- Runs the scheduler owes: at most one per product, so a burst of causes
-- coalesces into one run. Claiming an entry deletes it and starts its run
-- (with its lease) in one transaction.
CREATE TABLE run_queue (
    domain    TEXT COLLATE "C" NOT NULL,
    name      TEXT COLLATE "C" NOT NULL,
    cause     TEXT COLLATE "C" NOT NULL,
    due_at    BIGINT NOT NULL,
    attempt   BIGINT NOT NULL,
    queued_at BIGINT NOT NULL,
    PRIMARY KEY (domain, name)
);

-- Every cron tick a scheduler fired, so each fires once whatever the
-- number of schedulers.
CREATE TABLE schedule_ticks (
    domain   TEXT COLLATE "C" NOT NULL,
    name     TEXT COLLATE "C" NOT NULL,
    tick     BIGINT NOT NULL,
    fired_by TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (domain, name, tick)
);
