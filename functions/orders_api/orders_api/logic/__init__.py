"""Business rules of the order API: plain functions over the services, no event shapes."""
