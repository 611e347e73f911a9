"""API Gateway on this machine: the REST API in front of the real order function, its IAM
authorization and SigV4 checks, its proxy events, its workers and the live dashboard."""
