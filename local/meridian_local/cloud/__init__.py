"""The templates on this machine: read them as CloudFormation does, evaluate their intrinsics and
provision what they declare (the platform's stack, the runbooks' resources) into the local endpoint."""
