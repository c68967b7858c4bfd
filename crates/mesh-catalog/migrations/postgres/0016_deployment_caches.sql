-- What a process derives from the deployed products, kept per deployment
-- generation so the next short-lived process (`mesh lineage`, `mesh
-- catalog list`, `mesh query`) loads it instead of deriving it again:
-- `descriptors`, the parsed descriptors of `products()` in order, and
-- `lineage-graph`, the resolved column-lineage graph (docs/lineage.md,
-- "Where the graph is kept").
--
-- A cache, never the truth: the deployed rows are. A row is written by
-- the first process that derives it at a generation, under the
-- generation it read before reading the products, and rows of older
-- generations of the same kind are deleted then. `format` names the
-- encoding and the rules it was derived with; a process built with other
-- rules ignores the row and derives its own.
CREATE TABLE deployment_caches (
    kind       TEXT COLLATE "C"    NOT NULL,
    generation BIGINT NOT NULL,
    format     TEXT COLLATE "C"    NOT NULL,
    content    BYTEA    NOT NULL,
    PRIMARY KEY (kind, generation, format)
);
