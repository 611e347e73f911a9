"""The local platform behind `make run`: moto server, PostgreSQL, the matching node, the API.

The root holds the assembly (``platform``, ``shard``, ``settings``, ``preflight``, ``processes``,
``prometheus``, ``gateway_server`` and the ``python -m meridian_local`` command); the rooms hold the
rest: ``cloud`` (templates, intrinsics, provisioning), ``endpoint`` (the moto server and what makes
it answer as AWS), ``apigateway`` (API Gateway, IAM and SigV4), ``delivery`` (Lambda and event
delivery), ``drills`` (the DR and node drills) and ``demo``.
"""
