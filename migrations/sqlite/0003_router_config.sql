-- The router configuration (users, groups, routes, filters, interceptors, connectors)
-- managed by the admin API: one JSON document per version, the newest is in force.
-- Seeded from smsgw.toml's [router] on a fresh database; append-only history.
CREATE TABLE router_config (
    version  INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    document TEXT    NOT NULL
);
