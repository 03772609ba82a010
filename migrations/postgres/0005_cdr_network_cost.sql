-- Least-cost routing (issue 14): the destination's network and what the carrying
-- operator charged us, per CDR row. `operator` (0001) now holds the network's operator
-- name and `connector` the connector that actually carried the message (updated when a
-- failover moved it). Price is `total` (per part: `cost_per_part`, a historical name);
-- cost = the carrier's cost per SMS × parts; margin = total − cost. Old rows: cost 0.
ALTER TABLE cdr ADD COLUMN mcc SMALLINT;
ALTER TABLE cdr ADD COLUMN mnc SMALLINT;
ALTER TABLE cdr ADD COLUMN cost NUMERIC(18,6) NOT NULL DEFAULT 0;
ALTER TABLE cdr ADD COLUMN margin NUMERIC(18,6) NOT NULL DEFAULT 0;
CREATE INDEX cdr_accepted ON cdr (accepted_at);
