-- Health and notifications (docs/operations.md).

-- The health each product was last seen in, so a change of health is
-- noticed (and announced) once, by the process whose compare-and-set
-- update wins.
CREATE TABLE product_health (
    domain  TEXT NOT NULL,
    name    TEXT NOT NULL,
    health  TEXT NOT NULL, -- healthy | degraded | failing
    reasons TEXT NOT NULL, -- JSON array of strings
    since   BIGINT NOT NULL,
    PRIMARY KEY (domain, name)
);

-- Every notification sent, by key (`run-failed:<run>`, …), so several
-- schedulers send each once.
CREATE TABLE notices (
    key     TEXT PRIMARY KEY,
    sent_by TEXT NOT NULL,
    at      BIGINT NOT NULL
);
