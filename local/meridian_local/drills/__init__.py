"""The drills: the DR failover runbook rehearsed on two local regions (``dr_*``), and the death of
the matching shard's primary under load (``node_drill``)."""
