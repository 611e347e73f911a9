"""Market-data consumer: the matching nodes' Kinesis stream into the MarketData DynamoDB table."""
