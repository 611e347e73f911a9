"""Custom::LedgerMigrations: applies the ledger's SQL migrations on every deploy that changes them."""
