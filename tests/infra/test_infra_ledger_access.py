"""How the functions reach the ledger, as each environment deploys it (finding 6).

The CA bundle travels in the shared layer (``sam build`` copies it with the package), the dr
environment deploys without any copy of the master secret, and its migrations verify the replica
as their own role through IAM.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aws_lambda_builders.actions import CopySourceAction
from aws_lambda_builders.workflows.python_pip.workflow import PythonPipWorkflow

from tests.infra.templates import ROOT, load
from tools.cfn_model import environment_model


def test_sam_build_puts_the_rds_ca_bundle_in_the_shared_layer(tmp_path: Path) -> None:
    """The layer's BuildMethod python3.11 runs aws-lambda-builders' python_pip workflow, whose
    source copy excludes only its EXCLUDED_FILES: the bundle lands beside meridian/db.py, where
    db.RDS_CA_BUNDLE looks for it in the function (/opt/python/meridian/certs/...)."""
    layer = load("template.yaml")["Resources"]["SharedLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/shared/"
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    built = tmp_path / "python"
    CopySourceAction(
        str(ROOT / "layers/shared"), str(built), excludes=PythonPipWorkflow.EXCLUDED_FILES
    ).execute()
    bundle = built / "meridian" / "certs" / "rds-global-bundle.pem"
    assert bundle.read_bytes() == (ROOT / "layers/shared/meridian/certs/rds-global-bundle.pem").read_bytes()
    # Imported from the built layer, the module finds the bundle it carries.
    found = subprocess.run(
        [sys.executable, "-c", "import meridian.db as d; print(d.RDS_CA_BUNDLE, d.RDS_CA_BUNDLE.is_file())"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(built)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert found == [str(bundle), "True"]


def test_the_dr_region_deploys_without_a_secret_and_verifies_the_replica_through_iam() -> None:
    dr = environment_model("dr")
    assert "LedgerDbSecretArn" not in {k for k, v in dr.parameters.items() if v}
    assert all("LedgerDbSecretArn" not in str(rule) for rule in dr.template.get("Rules", {}).values())
    variables = dr.properties("MigrationsFunction")["Environment"]["Variables"]
    assert variables["DB_SECRET_ARN"] == ""  # the replica has no RDS-managed secret, and needs none
    assert variables["DB_USER"] == "meridian_migrations"
    resource_id = dr.nested("DataStack").output("DbResourceId")
    (policy,) = [p for p in dr.properties("MigrationsFunctionRole")["Policies"] if "rds-db:connect" in str(p)]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert (
        statement["Resource"]
        == f"arn:aws:rds-db:us-west-2:123456789012:dbuser:{resource_id}/meridian_migrations"
    )
    assert dr.properties("LedgerMigrations")["Mode"] == "verify"
    for name in ("LedgerFunction", "SurveillanceFunction", "OrdersApiFunction"):
        assert "DB_SECRET_ARN" not in dr.properties(name)["Environment"]["Variables"], name
