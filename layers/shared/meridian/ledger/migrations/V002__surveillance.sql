-- Surveillance state: an idempotent log of the activity the windowed rules count, and the
-- findings raised (each alerted on the ComplianceAlerts topic exactly when alerted_at is set).

CREATE TABLE surveillance_activity (
    event_id     TEXT NOT NULL,
    account      TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('order', 'replace', 'cancel', 'trade')),
    symbol       TEXT NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (event_id, account, kind)
);

CREATE INDEX surveillance_activity_window_idx ON surveillance_activity (account, occurred_at);

CREATE TABLE surveillance_findings (
    finding_id   TEXT PRIMARY KEY,
    rule         TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH')),
    account      TEXT NOT NULL,
    symbol       TEXT,
    event_id     TEXT NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    summary      TEXT NOT NULL,
    details      JSONB NOT NULL DEFAULT '{}'::jsonb,
    detected_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    alerted_at   TIMESTAMPTZ
);

CREATE INDEX surveillance_findings_account_idx ON surveillance_findings (account, occurred_at DESC);
CREATE INDEX surveillance_findings_unalerted_idx ON surveillance_findings (event_id)
    WHERE alerted_at IS NULL;
