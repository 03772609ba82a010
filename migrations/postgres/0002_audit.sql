-- Audit log: every balance adjustment and configuration change (who, what, when, from
-- where). Written in the same transactions as the ledger; append-only.
CREATE TABLE audit_log (
    seq     BIGSERIAL PRIMARY KEY,
    id      TEXT   NOT NULL UNIQUE,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT   NOT NULL,
    origin  TEXT   NOT NULL,
    action  TEXT   NOT NULL,
    subject TEXT   NOT NULL,
    detail  TEXT   NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, seq);

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION billing_append_only();
