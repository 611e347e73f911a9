"""stacks/data.yaml: RDS, S3 archives, EFS, EBS snapshot lifecycle, AWS Backup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meridian_hotpath.archive import ship
from meridian_hotpath.identity import write_node_number
from tests.infra.templates import load, properties, resource
from tests.s3 import S3_BUCKET
from tests.unit.statemachines.trading_data import write_data_dir
from tools.cfn_model import StackModel, environment_model, environments

DATA = load("stacks/data.yaml")
# The data stack's parameters without a default, as the root would pass them.
_DATA_REQUIRED = {
    name: "x"
    for name, spec in DATA["Parameters"].items()
    if "Default" not in spec and name not in ("Environment", "DataSubnetIds")
} | {"Environment": "dev", "DataSubnetIds": "subnet-a,subnet-b"}


def test_rds_postgresql_multi_az_encrypted_private_and_protected() -> None:
    db = properties(DATA, "Database")
    assert db["Engine"] == "postgres"
    assert db["MultiAZ"] == {"Ref": "DbMultiAz"}
    assert db["StorageEncrypted"] is True
    assert db["KmsKeyId"] == {"Ref": "TradingDataKeyArn"}
    assert db["PubliclyAccessible"] is False
    # Off until the stack exists: a failed first create must be able to delete what it made.
    assert db["DeletionProtection"] == {"Ref": "DbDeletionProtection"}
    assert DATA["Parameters"]["DbDeletionProtection"]["Default"] == "false"
    assert db["EnableIAMDatabaseAuthentication"] is True
    assert db["ManageMasterUserPassword"] is True
    assert db["MasterUserSecret"] == {"KmsKeyId": {"Ref": "TradingDataKeyArn"}}
    assert "MasterUserPassword" not in db
    assert db["BackupRetentionPeriod"] == {"Ref": "DbBackupRetentionDays"}
    assert DATA["Parameters"]["DbBackupRetentionDays"]["Default"] >= 7
    assert db["EnablePerformanceInsights"] is True
    assert db["PerformanceInsightsKMSKeyId"] == {"Ref": "TradingDataKeyArn"}
    assert resource(DATA, "Database")["DeletionPolicy"] == "Snapshot"


def test_database_lives_in_the_data_subnets_behind_its_security_group() -> None:
    assert properties(DATA, "DatabaseSubnetGroup")["SubnetIds"] == {"Ref": "DataSubnetIds"}
    ingress = properties(DATA, "DatabaseSecurityGroup")["SecurityGroupIngress"]
    assert {(r["FromPort"], r["SourceSecurityGroupId"]["Ref"]) for r in ingress} == {
        (5432, "LambdaSecurityGroupId"),
        (5432, "ComplianceSecurityGroupId"),
    }
    assert properties(DATA, "DatabaseParameterGroup")["Parameters"]["rds.force_ssl"] == "1"


def test_cross_region_read_replica_in_the_dr_deploy() -> None:
    primary, replica = resource(DATA, "Database"), resource(DATA, "DatabaseReplica")
    assert primary["Condition"] == "IsPrimaryDatabase"
    assert replica["Condition"] == "IsReplicaDatabase"
    assert DATA["Conditions"]["IsReplicaDatabase"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "PrimaryDbInstanceArn"}, ""]}]
    }
    props = replica["Properties"]
    assert props["SourceDBInstanceIdentifier"] == {"Ref": "PrimaryDbInstanceArn"}
    assert props["KmsKeyId"] == {"Ref": "TradingDataKeyArn"}
    assert props["MultiAZ"] == {"Ref": "DbMultiAz"}
    assert props["DeletionProtection"] == {"Ref": "DbDeletionProtection"}


def test_prod_and_dr_run_a_multi_az_ledger_dev_a_single_instance() -> None:
    multi_az = {
        section: environment_model(section).nested("DataStack").properties(database)["MultiAZ"]
        for section, database in (("default", "Database"), ("prod", "Database"), ("dr", "DatabaseReplica"))
    }
    assert multi_az == {"default": "false", "prod": "true", "dr": "true"}


def test_compliance_archive_is_locked_in_compliance_mode_for_seven_years() -> None:
    bucket = properties(DATA, "ComplianceArchiveBucket")
    assert bucket["ObjectLockEnabled"] is True
    retention = bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention["Mode"] == {"Ref": "ComplianceArchiveLockMode"}
    assert DATA["Parameters"]["ComplianceArchiveLockMode"]["Default"] == "COMPLIANCE"
    assert retention["Years"] == {"Ref": "ComplianceArchiveRetentionYears"}
    assert DATA["Parameters"]["ComplianceArchiveRetentionYears"]["Default"] == 7
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
        "ServerSideEncryptionByDefault"
    ]["KMSMasterKeyID"] == {"Ref": "ComplianceKeyArn"}


def test_buckets_replicate_across_regions_when_a_destination_is_given() -> None:
    for bucket, condition, destination in (
        ("ComplianceArchiveBucket", "ReplicatesComplianceArchive", "ComplianceArchiveReplicaBucketArn"),
        ("MarketDataArchiveBucket", "ReplicatesMarketDataArchive", "MarketDataArchiveReplicaBucketArn"),
        ("EngineStateBucket", "ReplicatesEngineState", "EngineStateReplicaBucketArn"),
    ):
        replication = properties(DATA, bucket)["ReplicationConfiguration"]["Fn::If"]
        assert replication[0] == condition
        assert replication[2] == {"Ref": "AWS::NoValue"}
        (rule,) = replication[1]["Rules"]
        assert rule["Destination"]["Bucket"] == {"Ref": destination}
        assert rule["SourceSelectionCriteria"]["SseKmsEncryptedObjects"]["Status"] == "Enabled"
        assert replication[1]["Role"] == {"Fn::GetAtt": ["ReplicationRole", "Arn"]}
        assert DATA["Parameters"][destination]["Default"] == ""
    assert resource(DATA, "ReplicationRole")["Condition"] == "ReplicatesAnyBucket"


def test_engine_state_replicates_with_time_control_for_the_dr_runbook() -> None:
    rule = properties(DATA, "EngineStateBucket")["ReplicationConfiguration"]["Fn::If"][1]["Rules"][0]
    assert rule["Destination"]["ReplicationTime"]["Status"] == "Enabled"
    assert rule["Destination"]["Metrics"]["Status"] == "Enabled"


def test_efs_for_monitoring_data_encrypted_with_mount_targets_in_both_data_subnets() -> None:
    efs = properties(DATA, "MonitoringFileSystem")
    assert efs["Encrypted"] is True
    assert efs["KmsKeyId"] == {"Ref": "LogsKeyArn"}
    assert efs["BackupPolicy"] == {"Status": "ENABLED"}
    subnets = sorted(
        properties(DATA, name)["SubnetId"]["Fn::Select"][0]
        for name in ("MonitoringMountTargetA", "MonitoringMountTargetB")
    )
    assert subnets == [0, 1]
    deny = efs["FileSystemPolicy"]["Statement"][0]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"]["Bool"]["aws:SecureTransport"] is False


def test_ebs_snapshot_lifecycle_targets_the_matching_node_volumes() -> None:
    policy = properties(DATA, "NodeSnapshotPolicy")
    assert policy["State"] == "ENABLED"
    details = policy["PolicyDetails"]
    assert details["ResourceTypes"] == ["VOLUME"]
    assert details["TargetTags"] == [
        {"Key": "meridian:snapshot", "Value": {"Fn::Sub": "hotpath-${Environment}"}}
    ]
    assert DATA["Outputs"]["SnapshotTagKey"]["Value"] == "meridian:snapshot"
    assert {s["Name"] for s in details["Schedules"]} == {"hourly", "daily"}


def test_backup_vault_plan_and_selection_with_compliance_retention() -> None:
    vault = properties(DATA, "BackupVault")
    assert vault["EncryptionKeyArn"] == {"Ref": "ComplianceKeyArn"}
    assert vault["LockConfiguration"]["MinRetentionDays"] >= 7
    rules = {r["RuleName"]: r for r in properties(DATA, "BackupPlan")["BackupPlan"]["BackupPlanRule"]}
    compliance = rules["monthly-compliance-retention"]
    assert compliance["Lifecycle"]["DeleteAfterDays"] == {"Ref": "ComplianceBackupRetentionDays"}
    assert DATA["Parameters"]["ComplianceBackupRetentionDays"]["Default"] == 2557  # 7 years
    assert rules["daily-with-point-in-time-recovery"]["EnableContinuousBackup"] is True
    # The environment is in the tag value: environments sharing an account back up only their own.
    data = environment_model("staging").nested("DataStack")
    (tag,) = data.properties("BackupSelection")["BackupSelection"]["ListOfTags"]
    assert (tag["ConditionKey"], tag["ConditionValue"]) == ("meridian:backup", "compliance-staging")
    tagged = [
        name
        for name in ("Database", "ComplianceArchiveBucket", "EngineStateBucket")
        if {"Key": "meridian:backup", "Value": "compliance-staging"} in data.properties(name).get("Tags", [])
    ]
    assert len(tagged) == 3
    efs_tags = data.properties("MonitoringFileSystem")["FileSystemTags"]
    assert {"Key": "meridian:backup", "Value": "compliance-staging"} in efs_tags


def test_outputs_are_the_stacks_interface() -> None:
    assert {
        "DbEndpointAddress",
        "DbEndpointPort",
        "DbMasterSecretArn",
        "DbInstanceArn",
        "ComplianceArchiveBucketName",
        "MarketDataArchiveBucketName",
        "MarketDataArchiveBucketArn",
        "EngineStateBucketName",
        "FileSystemId",
        "BackupVaultArn",
    } <= set(DATA["Outputs"])


def _expiring_prefixes(section: str) -> tuple[list[str], list[str]]:
    """(prefixes whose current objects expire, every rule's prefix) of the engine-state bucket."""
    data = environment_model(section).nested("DataStack")
    rules = data.properties("EngineStateBucket")["LifecycleConfiguration"]["Rules"]
    expiring = [str(r["Prefix"]) for r in rules if "ExpirationInDays" in r and r["Status"] == "Enabled"]
    return expiring, [str(r.get("Prefix", "")) for r in rules]


@pytest.mark.parametrize("section", sorted(environments()))
def test_engine_state_retention_applies_where_the_nodes_archive_and_spares_their_identity(
    section: str, tmp_path: Path, s3: Any
) -> None:
    """The node ships to <ArchivePrefix>/journal/ and /snapshots/ (meridian_hotpath.archive): the
    retention rules must match those keys, and never the node's number (<ArchivePrefix>/node.json)."""
    root = environment_model(section)
    archive_prefix = str(root.nested("HotpathStack").parameters["ArchivePrefix"])
    assert archive_prefix in str(root.parameters["EngineArchivePrefixes"]).split(",")
    write_data_dir(tmp_path, orders=40, snapshot_at=(20,), segment_bytes=800)
    write_node_number(tmp_path, 7)
    shipped = ship(tmp_path, s3, S3_BUCKET, archive_prefix, include_active=True).uploaded
    expiring, _ = _expiring_prefixes(section)

    def expires(key: str) -> bool:
        return any(key.startswith(prefix) for prefix in expiring)

    journal = [k for k in shipped if "/journal/" in k]
    snapshots = [k for k in shipped if "/snapshots/" in k]
    identity = [k for k in shipped if k.endswith("/node.json")]
    assert journal
    assert snapshots
    assert identity
    assert all(expires(k) for k in journal + snapshots), (expiring, journal + snapshots)
    assert not any(expires(k) for k in identity)
    assert not expires(f"{archive_prefix}/restore-points/run-1.json")


def test_every_listed_shard_gets_its_retention_rules() -> None:
    model = StackModel(
        "stacks/data.yaml",
        {**_DATA_REQUIRED, "EngineArchivePrefixes": "shards/a,shards/b,venue-x"},
        "us-east-1",
        "meridian-dev-DataStack",
        "dev",
    )
    rules = model.properties("EngineStateBucket")["LifecycleConfiguration"]["Rules"]
    prefixes = {r["Prefix"] for r in rules if "ExpirationInDays" in r}
    assert prefixes == {
        f"{s}/{f}/" for s in ("shards/a", "shards/b", "venue-x") for f in ("journal", "snapshots")
    }
