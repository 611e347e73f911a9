"""The local platform behind `make run`: moto server, PostgreSQL, the matching node, the API."""
