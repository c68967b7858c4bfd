-- Like the deployment generation (0008), for what access decisions read
-- besides the products: principals and their roles, teams (members and
-- domains), grants, and the recorded column classifications. A process
-- may keep a snapshot of them (see mesh-service `snapshot.rs`) until
-- this or the deployment generation moves, so a revoked grant or a
-- removed role counts from the next statement, in every process.
CREATE TABLE access_generation (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL
);
INSERT INTO access_generation (id, n) VALUES (1, 0);
CREATE FUNCTION bump_access_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE access_generation SET n = n + 1; RETURN NULL; END $$;
CREATE TRIGGER principals_inserted_access AFTER INSERT ON principals
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER principals_updated_access AFTER UPDATE ON principals
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER principals_deleted_access AFTER DELETE ON principals
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER principal_roles_inserted_access AFTER INSERT ON principal_roles
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER principal_roles_updated_access AFTER UPDATE ON principal_roles
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER principal_roles_deleted_access AFTER DELETE ON principal_roles
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER teams_inserted_access AFTER INSERT ON teams
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER teams_updated_access AFTER UPDATE ON teams
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER teams_deleted_access AFTER DELETE ON teams
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER team_members_inserted_access AFTER INSERT ON team_members
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER team_members_updated_access AFTER UPDATE ON team_members
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER team_members_deleted_access AFTER DELETE ON team_members
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER team_domains_inserted_access AFTER INSERT ON team_domains
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER team_domains_updated_access AFTER UPDATE ON team_domains
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER team_domains_deleted_access AFTER DELETE ON team_domains
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER grants_inserted_access AFTER INSERT ON grants
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER grants_updated_access AFTER UPDATE ON grants
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER grants_deleted_access AFTER DELETE ON grants
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER column_classes_inserted_access AFTER INSERT ON column_classes
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER column_classes_updated_access AFTER UPDATE ON column_classes
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
CREATE TRIGGER column_classes_deleted_access AFTER DELETE ON column_classes
FOR EACH ROW EXECUTE FUNCTION bump_access_generation();
