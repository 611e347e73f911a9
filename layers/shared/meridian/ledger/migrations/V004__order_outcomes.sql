-- Order outcomes beside the trades: why an order ended without trading its whole quantity, and the
-- read path of one order's fills.

-- One spelling across the API, the ledger and the docs.
ALTER TABLE positions RENAME COLUMN realised_pnl TO realized_pnl;

-- Every fill of one order (GET /orders/{order_id}/fills), oldest first.
CREATE INDEX trades_buy_order_idx ON trades (buy_order_id, ledger_seq);
CREATE INDEX trades_sell_order_idx ON trades (sell_order_id, ledger_seq);

-- One row per order.cancelled.v1 event: the open quantity an order lost and why (USER,
-- IOC_REMAINDER, FOK_UNFILLED, SELF_TRADE, END_OF_DAY, NO_LIQUIDITY, HALT). Idempotent on the
-- event id, as the trades are on their execution id.
CREATE TABLE order_cancellations (
    event_id            TEXT PRIMARY KEY,
    order_id            TEXT NOT NULL,
    client_order_id     TEXT NOT NULL,
    account             TEXT NOT NULL,
    symbol              TEXT NOT NULL,
    cancelled_quantity  BIGINT NOT NULL CHECK (cancelled_quantity >= 0),
    reason              TEXT NOT NULL,
    node_seq            BIGINT NOT NULL CHECK (node_seq >= 0),
    occurred_at         TIMESTAMPTZ NOT NULL,
    recorded_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_cancellations_order_idx ON order_cancellations (order_id);
CREATE INDEX order_cancellations_account_idx ON order_cancellations (account, occurred_at DESC);

GRANT SELECT, INSERT ON order_cancellations TO meridian_ledger;
GRANT SELECT ON order_cancellations TO meridian_orders_api;
