"""Executions consumer: the matching nodes' drop copy (executions stream) into trade.executed.v1 events."""
