-- Trades as executed by the matching nodes, and positions per account and symbol.
-- Prices and money are NUMERIC: exact decimals, never floating point.

CREATE TABLE trades (
    execution_id         TEXT PRIMARY KEY,
    ledger_seq           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_id             TEXT NOT NULL,
    symbol               TEXT NOT NULL,
    price                NUMERIC(38, 10) NOT NULL CHECK (price > 0),
    quantity             BIGINT NOT NULL CHECK (quantity > 0),
    aggressor_side       TEXT NOT NULL CHECK (aggressor_side IN ('BUY', 'SELL')),
    buy_order_id         TEXT NOT NULL,
    sell_order_id        TEXT NOT NULL,
    buy_account          TEXT NOT NULL,
    sell_account         TEXT NOT NULL,
    buy_client_order_id  TEXT NOT NULL,
    sell_client_order_id TEXT NOT NULL,
    node_seq             BIGINT NOT NULL CHECK (node_seq >= 0),
    occurred_at          TIMESTAMPTZ NOT NULL,
    recorded_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Read paths: an account's trades (either side) newest first, and a symbol's tape.
CREATE INDEX trades_buy_account_idx ON trades (buy_account, ledger_seq DESC);
CREATE INDEX trades_sell_account_idx ON trades (sell_account, ledger_seq DESC);
CREATE INDEX trades_symbol_idx ON trades (symbol, ledger_seq DESC);
CREATE INDEX trades_occurred_at_idx ON trades (occurred_at);

-- Average-cost positions. cost_basis is the exact cost of the open quantity; average_price is
-- cost_basis / |quantity| rounded for display; realised_pnl accumulates on every reduction.
CREATE TABLE positions (
    account           TEXT NOT NULL,
    symbol            TEXT NOT NULL,
    quantity          BIGINT NOT NULL DEFAULT 0,
    cost_basis        NUMERIC(38, 10) NOT NULL DEFAULT 0,
    average_price     NUMERIC(38, 10) NOT NULL DEFAULT 0,
    realised_pnl      NUMERIC(38, 10) NOT NULL DEFAULT 0,
    trade_count       BIGINT NOT NULL DEFAULT 0,
    last_ledger_seq   BIGINT NOT NULL DEFAULT 0,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, symbol),
    CHECK (cost_basis >= 0 AND average_price >= 0),
    CHECK (quantity <> 0 OR cost_basis = 0)
);
