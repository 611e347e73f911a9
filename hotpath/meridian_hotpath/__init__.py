"""Meridian matching node: the I/O shell (journal, snapshots, TCP server, metrics, market data)
around the matching engine core in ``meridian_hotpath.engine``."""
