"""The trade ledger in PostgreSQL: schema migrations, the idempotent writer, positions, reads."""

from meridian.ledger.migrate import (
    MigrationError,
    MigrationReport,
    is_read_only,
    latest_version,
    migrate,
    verify,
)
from meridian.ledger.positions import Fill, Position, apply_fill, rebuild_positions
from meridian.ledger.queries import (
    CancellationRow,
    InvalidCursorError,
    PositionRow,
    TradePage,
    TradeRow,
    cancellations,
    order_fills,
    positions,
    trades,
)
from meridian.ledger.writer import (
    ExecutionIdCollisionError,
    rebuild_from_history,
    record_cancellation,
    record_trade,
)

__all__ = [
    "CancellationRow",
    "ExecutionIdCollisionError",
    "Fill",
    "InvalidCursorError",
    "MigrationError",
    "MigrationReport",
    "Position",
    "PositionRow",
    "TradePage",
    "TradeRow",
    "apply_fill",
    "cancellations",
    "is_read_only",
    "latest_version",
    "migrate",
    "order_fills",
    "positions",
    "rebuild_from_history",
    "rebuild_positions",
    "record_cancellation",
    "record_trade",
    "trades",
    "verify",
]
