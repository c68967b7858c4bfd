-- Compactions (`mesh optimize`, docs/storage.md). A compaction rewrites a
-- release's small files into larger ones as a Delta version that changes
-- no data. The release keeps its number (time travel and consumers name
-- it); its `files` become the compacted ones, and `read_version` is the
-- Delta version that holds them, for readers that go through the log.
ALTER TABLE publications ADD COLUMN read_version BIGINT;
-- The files a compaction replaced. No reader is sent to them any more;
-- `mesh vacuum` removes them.
CREATE TABLE superseded_files (
    domain        TEXT   NOT NULL,
    output        TEXT   NOT NULL,
    path          TEXT   NOT NULL,
    table_version BIGINT NOT NULL,
    run_id        TEXT   NOT NULL REFERENCES runs (id),
    superseded_at TEXT   NOT NULL,
    PRIMARY KEY (domain, output, path)
);
