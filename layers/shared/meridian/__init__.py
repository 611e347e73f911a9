"""Meridian shared layer: domain model, wire protocol, hot-path client, events and configuration."""
