"""Storage and outside systems behind small interfaces: the logic never sees boto3 or SQL."""
