-- Least-cost routing (issue 14): the destination's network and what the carrying
-- operator charged us, per CDR row. `operator` (0001) now holds the network's operator
-- name and `connector` the connector that actually carried the message (updated when a
-- failover moved it). Price is `total` (per part: `cost_per_part`, a historical name);
-- cost = the carrier's cost per SMS × parts; margin = total − cost. Old rows: cost 0.
ALTER TABLE cdr ADD COLUMN mcc INTEGER;
ALTER TABLE cdr ADD COLUMN mnc INTEGER;
ALTER TABLE cdr ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN margin INTEGER NOT NULL DEFAULT 0;
-- The monthly margin report reads every account's rows of a month.
CREATE INDEX cdr_accepted ON cdr (accepted_at);
