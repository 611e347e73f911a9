"""Route declarations: each handler parses, authorises through the logic, and answers a model."""
