"""Trade surveillance: compliance rules over the lifecycle event stream, findings and alerts."""
