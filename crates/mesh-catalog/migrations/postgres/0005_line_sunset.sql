-- The sunset date of an older major deprecated with `mesh deprecate`. A
-- line has no descriptor of its own to carry one; for other products the
-- descriptor's `sunset` stays the source and this is NULL.
ALTER TABLE products ADD COLUMN sunset TEXT COLLATE "C";
