"""Repository tools: template evaluation per environment and the generators built on it."""
