"""The order-flow runbook's logic: intake, risk, compliance approval, routing to the matching node."""
