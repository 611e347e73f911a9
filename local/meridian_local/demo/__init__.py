"""``make demo``: a short trading session through the public REST API, and its live stream."""
