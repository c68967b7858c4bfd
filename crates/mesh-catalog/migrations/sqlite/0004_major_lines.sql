-- An older major of a product kept alive next to the newest one: the row
-- is a product of its own (`<name>_v<major>`), built from the last
-- definition deployed at that major. NULL for ordinary products.
ALTER TABLE products ADD COLUMN line_of TEXT;
