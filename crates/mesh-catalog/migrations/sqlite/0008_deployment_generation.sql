-- A counter that every change to the deployed products moves (products
-- and their outputs: deploy, retire, deprecate, new majors), so a
-- process can keep its parsed view of them until another process changes
-- them. Triggers, not application code, so no writer can forget it.
CREATE TABLE deployment_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
INSERT INTO deployment_generation (id, n) VALUES (1, 0);
CREATE TRIGGER products_inserted AFTER INSERT ON products
BEGIN UPDATE deployment_generation SET n = n + 1; END;
CREATE TRIGGER products_updated AFTER UPDATE ON products
BEGIN UPDATE deployment_generation SET n = n + 1; END;
CREATE TRIGGER products_deleted AFTER DELETE ON products
BEGIN UPDATE deployment_generation SET n = n + 1; END;
CREATE TRIGGER outputs_inserted AFTER INSERT ON outputs
BEGIN UPDATE deployment_generation SET n = n + 1; END;
CREATE TRIGGER outputs_updated AFTER UPDATE ON outputs
BEGIN UPDATE deployment_generation SET n = n + 1; END;
CREATE TRIGGER outputs_deleted AFTER DELETE ON outputs
BEGIN UPDATE deployment_generation SET n = n + 1; END;
