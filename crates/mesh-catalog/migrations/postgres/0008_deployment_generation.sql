-- A counter that every change to the deployed products moves (products
-- and their outputs: deploy, retire, deprecate, new majors), so a
-- process can keep its parsed view of them until another process changes
-- them. Triggers, not application code, so no writer can forget it.
CREATE TABLE deployment_generation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO deployment_generation (id, n) VALUES (1, 0);
CREATE FUNCTION bump_deployment_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE deployment_generation SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER products_inserted AFTER INSERT ON products
FOR EACH ROW EXECUTE FUNCTION bump_deployment_generation();
CREATE TRIGGER products_updated AFTER UPDATE ON products
FOR EACH ROW EXECUTE FUNCTION bump_deployment_generation();
CREATE TRIGGER products_deleted AFTER DELETE ON products
FOR EACH ROW EXECUTE FUNCTION bump_deployment_generation();
CREATE TRIGGER outputs_inserted AFTER INSERT ON outputs
FOR EACH ROW EXECUTE FUNCTION bump_deployment_generation();
CREATE TRIGGER outputs_updated AFTER UPDATE ON outputs
FOR EACH ROW EXECUTE FUNCTION bump_deployment_generation();
CREATE TRIGGER outputs_deleted AFTER DELETE ON outputs
FOR EACH ROW EXECUTE FUNCTION bump_deployment_generation();
