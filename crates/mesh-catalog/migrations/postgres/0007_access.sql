-- The access loop: a consumer asks, an owner decides, a grant expires.

CREATE TABLE access_requests (
    id            TEXT COLLATE "C" PRIMARY KEY,
    product       TEXT COLLATE "C" NOT NULL,          -- <domain>/<product>
    principal     TEXT COLLATE "C" NOT NULL REFERENCES principals(name),
    purpose       TEXT COLLATE "C" NOT NULL,
    duration_secs BIGINT NOT NULL,
    pii           BIGINT NOT NULL,       -- asks to see personal data
    requested_at  TEXT COLLATE "C" NOT NULL,
    status        TEXT COLLATE "C" NOT NULL,          -- pending | approved | denied
    decided_by    TEXT COLLATE "C",
    decided_at    TEXT COLLATE "C",
    reason        TEXT COLLATE "C"
);
CREATE INDEX access_requests_product ON access_requests (product, status);

CREATE TABLE grants (
    id            TEXT COLLATE "C" PRIMARY KEY,
    request_id    TEXT COLLATE "C" REFERENCES access_requests(id),
    product       TEXT COLLATE "C" NOT NULL,
    principal     TEXT COLLATE "C" NOT NULL REFERENCES principals(name),
    purpose       TEXT COLLATE "C" NOT NULL,
    allows_pii    BIGINT NOT NULL,
    granted_by    TEXT COLLATE "C" NOT NULL,
    granted_at    TEXT COLLATE "C" NOT NULL,
    expires_at    TEXT COLLATE "C" NOT NULL,
    revoked_at    TEXT COLLATE "C",
    revoked_by    TEXT COLLATE "C"
);
CREATE INDEX grants_principal ON grants (principal, product);
