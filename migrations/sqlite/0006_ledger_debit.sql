-- DEBIT: a reservation and its charge written as one ledger row when both fall in one
-- write batch (see billing/src/ledger.rs). SQLite cannot alter a CHECK constraint, so the
-- table is rebuilt with the same rows, indexes and triggers.
CREATE TABLE ledger_new (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('TOPUP', 'RESERVE', 'CHARGE', 'REFUND', 'ADJUST', 'DEBIT')),
    amount         INTEGER NOT NULL,
    balance_delta  INTEGER NOT NULL,
    reserved_delta INTEGER NOT NULL,
    sms_delta      INTEGER NOT NULL DEFAULT 0,
    reference      TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    reason         TEXT,
    at             INTEGER NOT NULL
);
INSERT INTO ledger_new (id, account_id, kind, amount, balance_delta, reserved_delta, sms_delta,
                        reference, actor, reason, at)
    SELECT id, account_id, kind, amount, balance_delta, reserved_delta, sms_delta,
           reference, actor, reason, at FROM ledger;
DROP TRIGGER ledger_no_update;
DROP TRIGGER ledger_no_delete;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE INDEX ledger_reference ON ledger (reference);
CREATE INDEX ledger_account_at ON ledger (account_id, at);
CREATE UNIQUE INDEX ledger_admin_reference ON ledger (account_id, kind, reference)
    WHERE kind IN ('TOPUP', 'ADJUST');
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
