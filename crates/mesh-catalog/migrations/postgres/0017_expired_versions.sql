-- Published data versions whose files retention removed (`mesh vacuum`,
-- docs/storage.md). The publication row stays (history, lineage and the
-- audit trail still name it); reading the version is refused with the
-- rule that expired it. A version is recorded here *before* its files are
-- deleted, so no reader starts on a version that is being removed.
CREATE TABLE expired_versions (
    domain        TEXT COLLATE "C"    NOT NULL,
    output        TEXT COLLATE "C"    NOT NULL,
    table_version BIGINT  NOT NULL,
    expired_at    TEXT COLLATE "C"    NOT NULL,
    rule          TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (domain, output, table_version)
);
-- Catalog pages show what retention keeps: expiring moves them.
CREATE TRIGGER expired_versions_inserted AFTER INSERT ON expired_versions
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
