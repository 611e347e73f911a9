"""The logic steps of the operator runbooks: compliance export and verification, engine restore,
integrity validation and the recovery-time clock."""
