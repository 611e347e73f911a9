"""Wire values the engine compares against on its hot path, as plain ``Final`` ints.

Spelled as literals so that mypyc folds them into the compiled code and the interpreter compares
plain ints instead of constructing enum members; the tests pin each one to the protocol's enums.
"""

from __future__ import annotations

from typing import Final

POST_ONLY: Final = 0x01
STP_SHIFT: Final = 1
STP_MASK: Final = 0x06
KNOWN_ORDER_FLAGS: Final = 0x07
NOT_STP_FLAGS: Final = -0x07  # ~STP_MASK: every bit but the STP ones (post-only, unknown bits)
STP_CANCEL_NEWEST: Final = 0
STP_CANCEL_OLDEST: Final = 1
STP_ALLOW: Final = 3
UNKNOWN_SYMBOL: Final = 1
INVALID_QUANTITY: Final = 2
LOT_SIZE: Final = 3
TICK_SIZE: Final = 4
PRICE_BAND: Final = 5
POST_ONLY_WOULD_CROSS: Final = 6
INVALID_PRICE: Final = 7
UNKNOWN_ORDER: Final = 9
NOT_ORDER_OWNER: Final = 10
TRADING_HALTED: Final = 11
INVALID_ORDER: Final = 12
REPLACE_NOT_ALLOWED: Final = 13
CANCEL_USER: Final = 1
CANCEL_IOC_REMAINDER: Final = 2
CANCEL_FOK_UNFILLED: Final = 3
CANCEL_SELF_TRADE: Final = 4
CANCEL_END_OF_DAY: Final = 5
CANCEL_NO_LIQUIDITY: Final = 6
ADMIN_HALT: Final = 1
ADMIN_RESUME: Final = 2
ADMIN_END_OF_DAY: Final = 3
FLAG_DUPLICATE: Final = 2  # protocol Flag bits the engine reports in last_flags
FLAG_REPLACED: Final = 4
