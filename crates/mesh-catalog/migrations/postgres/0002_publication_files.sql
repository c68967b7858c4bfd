-- The data files and columns of each published version, so readers can
-- scan a version without replaying the Delta log. NULL for versions
-- recorded by crash recovery: readers then go through the Delta log.
ALTER TABLE publications ADD COLUMN files TEXT COLLATE "C";
ALTER TABLE publications ADD COLUMN columns TEXT COLLATE "C";
