-- Who may act on the mesh, and the record of what they did.

CREATE TABLE principals (
    name        TEXT COLLATE "C" PRIMARY KEY,
    kind        TEXT COLLATE "C" NOT NULL,            -- user | service
    created_at  TEXT COLLATE "C" NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL
);

CREATE TABLE principal_roles (
    principal   TEXT COLLATE "C" NOT NULL REFERENCES principals(name),
    role        TEXT COLLATE "C" NOT NULL,            -- global roles, e.g. mesh-admin, pii-reader
    PRIMARY KEY (principal, role)
);

CREATE TABLE teams (
    name        TEXT COLLATE "C" PRIMARY KEY,
    created_at  TEXT COLLATE "C" NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL
);

CREATE TABLE team_members (
    team        TEXT COLLATE "C" NOT NULL REFERENCES teams(name),
    principal   TEXT COLLATE "C" NOT NULL REFERENCES principals(name),
    PRIMARY KEY (team, principal)
);

-- The domains a team owns.
CREATE TABLE team_domains (
    team        TEXT COLLATE "C" NOT NULL REFERENCES teams(name),
    domain      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (team, domain)
);

-- API tokens: only an Argon2id hash of the secret is stored.
CREATE TABLE tokens (
    id          TEXT COLLATE "C" PRIMARY KEY,
    principal   TEXT COLLATE "C" NOT NULL REFERENCES principals(name),
    hash        TEXT COLLATE "C" NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL,
    expires_at  TEXT COLLATE "C",
    revoked_at  TEXT COLLATE "C"
);

-- Append-only: triggers refuse updates and deletes.
CREATE TABLE audit_log (
    seq         BIGSERIAL PRIMARY KEY,
    at          TEXT COLLATE "C" NOT NULL,
    principal   TEXT COLLATE "C" NOT NULL,
    action      TEXT COLLATE "C" NOT NULL,            -- query | deploy | token.create | ...
    product     TEXT COLLATE "C",
    columns     TEXT COLLATE "C",                     -- JSON array, when columns matter
    decision    TEXT COLLATE "C" NOT NULL,            -- allow | deny | done
    reason      TEXT COLLATE "C" NOT NULL,
    detail      TEXT COLLATE "C"                      -- JSON object, action-specific
);
CREATE INDEX audit_log_product ON audit_log (product, seq);
CREATE INDEX audit_log_principal ON audit_log (principal, seq);

CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
