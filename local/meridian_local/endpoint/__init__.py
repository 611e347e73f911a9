"""The local AWS endpoint: moto in server mode, its clients, and what makes it answer as AWS does
(atomic transactions, SDK integrations of Step Functions, global tables)."""
