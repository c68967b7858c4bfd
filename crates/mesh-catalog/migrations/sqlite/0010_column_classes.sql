-- The classification every deployed version of a product declared for
-- each column of each output, so that a read of any version applies the
-- strictest classification the column has in that version or any later
-- one (docs/governance.md, "Classifications across versions").
--
-- `family` is the product an older major's line belongs to (the newest
-- major's product), `output` the output's name in the family (without a
-- line's `_v<major>`), `lineage` one column's identity across declared
-- renames: its name when it was first recorded. Rows are only added; a
-- version deployed again keeps the stricter classification.
CREATE TABLE column_classes (
    family         TEXT NOT NULL,
    output         TEXT NOT NULL,
    version        TEXT NOT NULL,
    name           TEXT NOT NULL,
    lineage        TEXT NOT NULL,
    classification TEXT,
    PRIMARY KEY (family, output, version, name)
);
