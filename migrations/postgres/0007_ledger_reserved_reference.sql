-- The ledger's index by reference serves one lookup: the reservation left on a message
-- whose CDR is still PENDING (recovery after a restart), a sum of reserved_delta. Rows
-- that move no reservation add nothing to that sum, and they are nearly all of the
-- ledger: a DEBIT whose charge took all it reserved (every message sent), TOPUP, ADJUST.
-- Indexing only the rows that move a reservation spares one index insert per message.
-- Reconcile reads the whole ledger grouped by reference, which never needed the index.
DROP INDEX ledger_reference;
CREATE INDEX ledger_reserving_reference ON ledger (reference) WHERE reserved_delta <> 0;
