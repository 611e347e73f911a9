"""The trading domain shared by the matching node, the Lambdas and the clients.

Prices are integers in ticks of the instrument's price unit (``price_scale`` decimal places);
quantities are integers in units of the instrument. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import IntEnum

SYMBOL_LEN = 8
ACCOUNT_LEN = 16
CLIENT_ORDER_ID_LEN = 20
MAX_QUANTITY = 10**12
MAX_PRICE = 10**15
AVERAGE_EXTRA_DIGITS = 2  # an average price prints this many digits finer than the instrument's prices


class Side(IntEnum):
    BUY = 1
    SELL = 2

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2


class TimeInForce(IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3
    DAY = 4


class SelfTradePrevention(IntEnum):
    """What happens when an incoming order would trade against a resting order of its own account."""

    CANCEL_NEWEST = 0
    CANCEL_OLDEST = 1
    CANCEL_BOTH = 2
    ALLOW = 3


class OrderStatus(IntEnum):
    NEW = 1
    PARTIALLY_FILLED = 2
    FILLED = 3
    CANCELLED = 4
    REJECTED = 5
    PENDING_APPROVAL = 6
    EXPIRED = 7
    PENDING_TRIGGER = 8  # a stop order waiting in the node for its trigger price


class RejectReason(IntEnum):
    """Machine-readable reject codes; the matching node and the API share one numbering."""

    UNKNOWN_SYMBOL = 1
    INVALID_QUANTITY = 2
    LOT_SIZE = 3
    TICK_SIZE = 4
    PRICE_BAND = 5
    POST_ONLY_WOULD_CROSS = 6
    INVALID_PRICE = 7
    DUPLICATE_CLIENT_ORDER_ID = 8
    UNKNOWN_ORDER = 9
    NOT_ORDER_OWNER = 10
    TRADING_HALTED = 11
    INVALID_ORDER = 12
    REPLACE_NOT_ALLOWED = 13
    SYMBOL_NOT_HALTED = 14  # a BOOK_EXPORT of a symbol that trades (halt it first)
    # Pre-trade risk (checked by the order API before the order reaches the node).
    MAX_ORDER_QUANTITY = 20
    MAX_NOTIONAL = 21
    MAX_OPEN_ORDERS = 22
    POSITION_LIMIT = 23
    RESTRICTED_SYMBOL = 24
    COMPLIANCE_REJECTED = 25
    APPROVAL_TIMEOUT = 26


class CancelReason(IntEnum):
    USER = 1
    IOC_REMAINDER = 2
    FOK_UNFILLED = 3
    SELF_TRADE = 4
    END_OF_DAY = 5
    NO_LIQUIDITY = 6
    HALT = 7


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument and the rules orders on it must follow."""

    symbol: str
    tick_size: int = 1
    lot_size: int = 1
    price_scale: int = 2
    reference_price: int = 0
    band_bps: int = 1000
    max_order_quantity: int = MAX_QUANTITY

    def __post_init__(self) -> None:
        if not self.symbol or len(self.symbol.encode()) > SYMBOL_LEN or not self.symbol.isascii():
            raise ValueError(f"symbol must be 1-{SYMBOL_LEN} ASCII characters: {self.symbol!r}")
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError("tick_size and lot_size must be positive")
        if self.band_bps < 0 or self.reference_price < 0 or self.price_scale < 0:
            raise ValueError("band_bps, reference_price and price_scale must not be negative")

    def band(self, reference: int) -> tuple[int, int]:
        """Lowest and highest acceptable price (inclusive) around ``reference``; no band when 0."""
        if reference <= 0 or self.band_bps == 0:
            return 1, MAX_PRICE
        width = reference * self.band_bps // 10_000
        return max(1, reference - width), reference + width

    def to_ticks(self, price: Decimal) -> int:
        """Convert a decimal price into integer price units; raises ValueError off the grid."""
        units = price.scaleb(self.price_scale)
        if units != units.to_integral_value():
            raise ValueError(f"price {price} has more than {self.price_scale} decimal places")
        return int(units)

    def to_price(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.price_scale)

    def price_text(self, value: Decimal | int) -> str:
        """A price (or an amount of money) as text on the instrument's grid of decimals: "190.00",
        never "190", "190.0000000000" or "1.9E+2" (whatever scale the number was stored with)."""
        return _fixed(Decimal(value), self.price_scale)

    def average_text(self, value: Decimal) -> str:
        """An average price: ``AVERAGE_EXTRA_DIGITS`` finer than the grid, rounded half-even."""
        return _fixed(value, self.price_scale + AVERAGE_EXTRA_DIGITS)


def _fixed(value: Decimal, places: int) -> str:
    return format(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN), "f")


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("AAPL", tick_size=1, lot_size=1, price_scale=2, reference_price=19000, band_bps=1000),
    Instrument("MSFT", tick_size=1, lot_size=1, price_scale=2, reference_price=42000, band_bps=1000),
    Instrument("ESZ6", tick_size=25, lot_size=1, price_scale=2, reference_price=600000, band_bps=500),
    Instrument("BTCUSD", tick_size=50, lot_size=10, price_scale=2, reference_price=9500000, band_bps=2000),
)
