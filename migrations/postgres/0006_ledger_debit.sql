-- DEBIT: a reservation and its charge written as one ledger row when both fall in one
-- write batch (see billing/src/ledger.rs).
ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check
    CHECK (kind IN ('TOPUP', 'RESERVE', 'CHARGE', 'REFUND', 'ADJUST', 'DEBIT'));
