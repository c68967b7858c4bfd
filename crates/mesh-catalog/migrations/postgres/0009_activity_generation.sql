-- Like the deployment generation (0008), for what runs change: runs,
-- their check results and publications, and contract-gate overrides. A
-- process may keep documents built from them (a product's catalog page)
-- until either generation moves.
CREATE TABLE activity_generation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO activity_generation (id, n) VALUES (1, 0);
CREATE FUNCTION bump_activity_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE activity_generation SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER runs_inserted AFTER INSERT ON runs
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
CREATE TRIGGER runs_updated AFTER UPDATE ON runs
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
CREATE TRIGGER runs_deleted AFTER DELETE ON runs
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
CREATE TRIGGER check_results_inserted AFTER INSERT ON check_results
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
CREATE TRIGGER check_results_deleted AFTER DELETE ON check_results
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
CREATE TRIGGER publications_inserted AFTER INSERT ON publications
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
CREATE TRIGGER publications_updated AFTER UPDATE ON publications
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
CREATE TRIGGER publications_deleted AFTER DELETE ON publications
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
CREATE TRIGGER contract_overrides_inserted AFTER INSERT ON contract_overrides
FOR EACH ROW EXECUTE FUNCTION bump_activity_generation();
