"""Meridian order API: REST routes over pre-trade risk, the hot-path client and DynamoDB."""
