-- A product's outputs are looked up by product on every run (its
-- upstreams' outputs), not only by (domain, output).
CREATE INDEX outputs_by_product ON outputs (product);

-- The activity generation a publication was recorded in: publications
-- are written one transaction at a time, so a reader that remembers the
-- highest `seq` it saw reads only newer publications next time.
ALTER TABLE publications ADD COLUMN seq BIGINT;
CREATE INDEX publications_by_seq ON publications (seq);
