-- Published data versions whose files retention removed (`mesh vacuum`,
-- docs/storage.md). The publication row stays (history, lineage and the
-- audit trail still name it); reading the version is refused with the
-- rule that expired it. A version is recorded here *before* its files are
-- deleted, so no reader starts on a version that is being removed.
CREATE TABLE expired_versions (
    domain        TEXT    NOT NULL,
    output        TEXT    NOT NULL,
    table_version BIGINT  NOT NULL,
    expired_at    TEXT    NOT NULL,
    rule          TEXT    NOT NULL,
    PRIMARY KEY (domain, output, table_version)
);
-- Catalog pages show what retention keeps: expiring moves them.
CREATE TRIGGER expired_versions_inserted AFTER INSERT ON expired_versions
BEGIN UPDATE activity_generation SET n = n + 1; END;
