"""The streaming gateway: book depth, trades and each caller's own order updates over WebSocket."""
