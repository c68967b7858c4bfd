-- Who may act on the mesh, and the record of what they did.

CREATE TABLE principals (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,            -- user | service
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);

CREATE TABLE principal_roles (
    principal   TEXT NOT NULL REFERENCES principals(name),
    role        TEXT NOT NULL,            -- global roles, e.g. mesh-admin, pii-reader
    PRIMARY KEY (principal, role)
);

CREATE TABLE teams (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);

CREATE TABLE team_members (
    team        TEXT NOT NULL REFERENCES teams(name),
    principal   TEXT NOT NULL REFERENCES principals(name),
    PRIMARY KEY (team, principal)
);

-- The domains a team owns.
CREATE TABLE team_domains (
    team        TEXT NOT NULL REFERENCES teams(name),
    domain      TEXT NOT NULL,
    PRIMARY KEY (team, domain)
);

-- API tokens: only an Argon2id hash of the secret is stored.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL REFERENCES principals(name),
    hash        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);

-- Append-only: triggers refuse updates and deletes.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    principal   TEXT NOT NULL,
    action      TEXT NOT NULL,            -- query | deploy | token.create | ...
    product     TEXT,
    columns     TEXT,                     -- JSON array, when columns matter
    decision    TEXT NOT NULL,            -- allow | deny | done
    reason      TEXT NOT NULL,
    detail      TEXT                      -- JSON object, action-specific
);
CREATE INDEX audit_log_product ON audit_log (product, seq);
CREATE INDEX audit_log_principal ON audit_log (principal, seq);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
