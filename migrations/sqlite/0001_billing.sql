-- Billing schema (SQLite). Money is INTEGER micro-units (1 = 10^-6 of the currency);
-- time is INTEGER unix microseconds (UTC).

CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    parent_id     INTEGER REFERENCES accounts(id),
    kind          TEXT    NOT NULL CHECK (kind IN ('admin', 'reseller', 'client')),
    name          TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('active', 'suspended')),
    currency      TEXT    NOT NULL CHECK (length(currency) = 3),
    early_percent INTEGER CHECK (early_percent BETWEEN 1 AND 100),
    sms_quota     INTEGER NOT NULL DEFAULT 0 CHECK (sms_quota IN (0, 1)),
    created_at    INTEGER NOT NULL
);

-- Snapshot of the ledger sums, updated in the same transaction as the entries.
CREATE TABLE balances (
    account_id   INTEGER PRIMARY KEY REFERENCES accounts(id),
    balance      INTEGER NOT NULL DEFAULT 0,
    credit_limit INTEGER NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    reserved     INTEGER NOT NULL DEFAULT 0,
    sms_count    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE operators (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL,
    mcc  INTEGER NOT NULL,
    mnc  INTEGER NOT NULL,
    UNIQUE (mcc, mnc)
);

CREATE TABLE tariffs (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER REFERENCES accounts(id),   -- NULL: global; else an account override
    mcc        INTEGER,
    mnc        INTEGER,
    prefix     TEXT,
    price      INTEGER NOT NULL CHECK (price >= 0),
    currency   TEXT    NOT NULL CHECK (length(currency) = 3),
    valid_from INTEGER NOT NULL,
    valid_to   INTEGER,
    CHECK ((mcc IS NULL) <> (prefix IS NULL)),
    CHECK (mnc IS NULL OR mcc IS NOT NULL),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);

CREATE TABLE tariff_tiers (
    tariff_id   INTEGER NOT NULL REFERENCES tariffs(id) ON DELETE CASCADE,
    min_volume  INTEGER NOT NULL CHECK (min_volume >= 0),
    discount_bp INTEGER NOT NULL CHECK (discount_bp BETWEEN 0 AND 10000),
    PRIMARY KEY (tariff_id, min_volume)
);

-- The ledger: append-only; balance = Σ balance_delta, reserved = Σ reserved_delta.
-- No foreign key on account_id here or in cdr: a per-row key check halves the insert
-- rate of these hot tables; accounts are written (synchronously) before any entry that
-- names them, accounts are never deleted, and reconcile lists entries of unknown accounts.
CREATE TABLE ledger (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('TOPUP', 'RESERVE', 'CHARGE', 'REFUND', 'ADJUST')),
    amount         INTEGER NOT NULL,
    balance_delta  INTEGER NOT NULL,
    reserved_delta INTEGER NOT NULL,
    sms_delta      INTEGER NOT NULL DEFAULT 0,
    reference      TEXT    NOT NULL,
    actor          TEXT    NOT NULL,
    reason         TEXT,
    at             INTEGER NOT NULL
);
CREATE INDEX ledger_reference ON ledger (reference);
CREATE INDEX ledger_account_at ON ledger (account_id, at);
CREATE UNIQUE INDEX ledger_admin_reference ON ledger (account_id, kind, reference)
    WHERE kind IN ('TOPUP', 'ADJUST');

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;

-- One row per message. Never deleted; money and identity columns are write-once.
CREATE TABLE cdr (
    message_id      TEXT    PRIMARY KEY,
    account_id      INTEGER NOT NULL,
    user_name       TEXT    NOT NULL,
    connector       TEXT    NOT NULL,
    operator        TEXT    NOT NULL,
    destination     TEXT    NOT NULL,
    sender          TEXT    NOT NULL,
    parts           INTEGER NOT NULL CHECK (parts > 0),
    text_length     INTEGER NOT NULL,
    text_hash       TEXT    NOT NULL,
    currency        TEXT    NOT NULL,
    cost_per_part   INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    charged         INTEGER NOT NULL,
    charge_status   TEXT    NOT NULL CHECK (charge_status IN ('PENDING', 'CHARGED', 'REFUNDED')),
    accepted_at     INTEGER NOT NULL,
    submitted_at    INTEGER,
    operator_msg_id TEXT,
    receipt_at      INTEGER,
    final_status    TEXT
);
CREATE INDEX cdr_pending ON cdr (charge_status) WHERE charge_status = 'PENDING';
CREATE INDEX cdr_account_accepted ON cdr (account_id, accepted_at);

CREATE TRIGGER cdr_no_delete BEFORE DELETE ON cdr
BEGIN SELECT RAISE(ABORT, 'cdr is append-only'); END;
CREATE TRIGGER cdr_write_once
BEFORE UPDATE OF message_id, account_id, currency, cost_per_part, total, parts, accepted_at ON cdr
BEGIN SELECT RAISE(ABORT, 'cdr money and identity columns are write-once'); END;
