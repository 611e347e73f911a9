"""IAM as the platform's edges see it: SigV4 verification, identity-policy and trust-policy decisions.

Shared by the local API Gateway (``meridian_local``), which checks each request's signature and
route the way API Gateway's IAM authorization does, and the streaming gateway
(``meridian_gateway``), which verifies a signed connect and decides channels against the same
roles' ``execute-api:Invoke`` policies (``access.RoleAccess``).
"""
