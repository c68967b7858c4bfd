-- The column lineage each deployed version of a product derived from its
-- SQL (docs/lineage.md), kept per version like its classifications.
--
-- `family` and `version` name the deployed version as `column_classes`
-- does (an older major's line keeps the rows of the version it was).
-- `lineage` is the derived document (JSON): per output (by its name in
-- the family) and column, the edges to the product's *inputs*; readers
-- resolve inputs to upstream outputs as runs do, so a consumer of a
-- product that later splits into majors follows the line it reads.
-- A version deployed again replaces its row: the row describes the
-- definition deployed under that version last.
CREATE TABLE column_lineage (
    family  TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    lineage TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (family, version)
);
