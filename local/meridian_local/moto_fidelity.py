"""Where moto 5.2.5 behaves differently from AWS in ways the runbooks depend on, made to match AWS.

* SDK integrations (``arn:aws:states:::aws-sdk:...``) use the AWS SDK v2 member names: see
  ``sdk_integrations``.
* A promoted RDS read replica no longer reports ``ReadReplicaSourceDBInstanceIdentifier`` (moto
  keeps it), which is how a runbook sees that the promotion finished.
"""

from __future__ import annotations

from typing import Any

from meridian_local import sdk_integrations

_installed = False


def _promote_and_detach(original: Any) -> Any:
    def promote_read_replica(self: Any, db_kwargs: dict[str, Any]) -> Any:
        database = original(self, db_kwargs)
        database.source_db_instance_identifier = None
        return database

    return promote_read_replica


def install() -> None:
    global _installed
    sdk_integrations.install()
    if _installed:
        return
    from moto.rds.models import RDSBackend  # noqa: PLC0415

    RDSBackend.promote_read_replica = _promote_and_detach(RDSBackend.promote_read_replica)  # type: ignore[method-assign]
    _installed = True
