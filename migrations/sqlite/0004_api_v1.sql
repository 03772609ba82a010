-- REST API v1 (api/src/v1): API keys, idempotency answers, the messages the API accepted,
-- webhooks and their delivery log. Time is INTEGER unix microseconds (UTC); money is
-- INTEGER micro-units.

-- Keys are stored as the SHA-256 of the secret (a 32-byte random value shown once).
CREATE TABLE api_keys (
    id          TEXT    PRIMARY KEY,
    uid         TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    hash        TEXT    NOT NULL UNIQUE,
    prefix      TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    cidrs       TEXT    NOT NULL,
    rate        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_uid ON api_keys (uid);

-- One row per (user, Idempotency-Key): claimed before the send (status 0), then the
-- answer that every retry within 24 h gets.
CREATE TABLE api_idempotency (
    uid          TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (uid, key)
);
CREATE INDEX api_idempotency_created ON api_idempotency (created_at);

-- What the API accepted, one row per recipient; the state follows the receipts.
CREATE TABLE api_messages (
    id               TEXT    PRIMARY KEY,
    uid              TEXT    NOT NULL,
    client_reference TEXT,
    sender           TEXT    NOT NULL,
    recipient        TEXT    NOT NULL,
    encoding         TEXT    NOT NULL,
    parts            INTEGER NOT NULL,
    cost             INTEGER NOT NULL,
    currency         TEXT    NOT NULL,
    webhook_url      TEXT,
    status           TEXT    NOT NULL,
    error_code       TEXT,
    connector        TEXT,
    created_at       INTEGER NOT NULL,
    scheduled_at     INTEGER,
    sent_at          INTEGER,
    done_at          INTEGER
);
CREATE INDEX api_messages_uid_created ON api_messages (uid, created_at, id);
CREATE INDEX api_messages_uid_reference ON api_messages (uid, client_reference);

CREATE TABLE api_webhooks (
    id          TEXT    PRIMARY KEY,
    uid         TEXT    NOT NULL,
    url         TEXT    NOT NULL,
    events      TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    deleted_at  INTEGER
);
CREATE INDEX api_webhooks_uid ON api_webhooks (uid);

-- Webhook events to deliver (the outbox) and every attempt made.
CREATE TABLE api_webhook_events (
    id           TEXT    PRIMARY KEY,
    webhook_id   TEXT    NOT NULL,
    uid          TEXT    NOT NULL,
    url          TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    next_at      INTEGER,
    state        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX api_webhook_events_due ON api_webhook_events (state, next_at);
CREATE INDEX api_webhook_events_hook ON api_webhook_events (webhook_id, created_at);

CREATE TABLE api_webhook_attempts (
    event_id    TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      INTEGER,
    error       TEXT,
    PRIMARY KEY (event_id, attempt)
);
