-- Like the deployment generation (0008), for what runs change: runs,
-- their check results and publications, and contract-gate overrides. A
-- process may keep documents built from them (a product's catalog page)
-- until either generation moves.
CREATE TABLE activity_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
INSERT INTO activity_generation (id, n) VALUES (1, 0);
CREATE TRIGGER runs_inserted AFTER INSERT ON runs
BEGIN UPDATE activity_generation SET n = n + 1; END;
CREATE TRIGGER runs_updated AFTER UPDATE ON runs
BEGIN UPDATE activity_generation SET n = n + 1; END;
CREATE TRIGGER runs_deleted AFTER DELETE ON runs
BEGIN UPDATE activity_generation SET n = n + 1; END;
CREATE TRIGGER check_results_inserted AFTER INSERT ON check_results
BEGIN UPDATE activity_generation SET n = n + 1; END;
CREATE TRIGGER check_results_deleted AFTER DELETE ON check_results
BEGIN UPDATE activity_generation SET n = n + 1; END;
CREATE TRIGGER publications_inserted AFTER INSERT ON publications
BEGIN UPDATE activity_generation SET n = n + 1; END;
CREATE TRIGGER publications_updated AFTER UPDATE ON publications
BEGIN UPDATE activity_generation SET n = n + 1; END;
CREATE TRIGGER publications_deleted AFTER DELETE ON publications
BEGIN UPDATE activity_generation SET n = n + 1; END;
CREATE TRIGGER contract_overrides_inserted AFTER INSERT ON contract_overrides
BEGIN UPDATE activity_generation SET n = n + 1; END;
