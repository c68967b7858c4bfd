-- The access loop: a consumer asks, an owner decides, a grant expires.

CREATE TABLE access_requests (
    id            TEXT PRIMARY KEY,
    product       TEXT NOT NULL,          -- <domain>/<product>
    principal     TEXT NOT NULL REFERENCES principals(name),
    purpose       TEXT NOT NULL,
    duration_secs INTEGER NOT NULL,
    pii           INTEGER NOT NULL,       -- asks to see personal data
    requested_at  TEXT NOT NULL,
    status        TEXT NOT NULL,          -- pending | approved | denied
    decided_by    TEXT,
    decided_at    TEXT,
    reason        TEXT
);
CREATE INDEX access_requests_product ON access_requests (product, status);

CREATE TABLE grants (
    id            TEXT PRIMARY KEY,
    request_id    TEXT REFERENCES access_requests(id),
    product       TEXT NOT NULL,
    principal     TEXT NOT NULL REFERENCES principals(name),
    purpose       TEXT NOT NULL,
    allows_pii    INTEGER NOT NULL,
    granted_by    TEXT NOT NULL,
    granted_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    revoked_at    TEXT,
    revoked_by    TEXT
);
CREATE INDEX grants_principal ON grants (principal, product);
