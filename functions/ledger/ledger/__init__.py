"""Ledger consumer: trade.executed.v1 events from the LedgerQueue into PostgreSQL."""
