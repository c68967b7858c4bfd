-- Like the deployment generation (0008), for what access decisions read
-- besides the products: principals and their roles, teams (members and
-- domains), grants, and the recorded column classifications. A process
-- may keep a snapshot of them (see mesh-service `snapshot.rs`) until
-- this or the deployment generation moves, so a revoked grant or a
-- removed role counts from the next statement, in every process.
CREATE TABLE access_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n INTEGER NOT NULL
);
INSERT INTO access_generation (id, n) VALUES (1, 0);
CREATE TRIGGER principals_inserted_access AFTER INSERT ON principals
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER principals_updated_access AFTER UPDATE ON principals
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER principals_deleted_access AFTER DELETE ON principals
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER principal_roles_inserted_access AFTER INSERT ON principal_roles
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER principal_roles_updated_access AFTER UPDATE ON principal_roles
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER principal_roles_deleted_access AFTER DELETE ON principal_roles
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER teams_inserted_access AFTER INSERT ON teams
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER teams_updated_access AFTER UPDATE ON teams
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER teams_deleted_access AFTER DELETE ON teams
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER team_members_inserted_access AFTER INSERT ON team_members
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER team_members_updated_access AFTER UPDATE ON team_members
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER team_members_deleted_access AFTER DELETE ON team_members
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER team_domains_inserted_access AFTER INSERT ON team_domains
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER team_domains_updated_access AFTER UPDATE ON team_domains
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER team_domains_deleted_access AFTER DELETE ON team_domains
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER grants_inserted_access AFTER INSERT ON grants
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER grants_updated_access AFTER UPDATE ON grants
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER grants_deleted_access AFTER DELETE ON grants
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER column_classes_inserted_access AFTER INSERT ON column_classes
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER column_classes_updated_access AFTER UPDATE ON column_classes
BEGIN UPDATE access_generation SET n = n + 1; END;
CREATE TRIGGER column_classes_deleted_access AFTER DELETE ON column_classes
BEGIN UPDATE access_generation SET n = n + 1; END;
