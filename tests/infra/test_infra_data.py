"""stacks/data.yaml: RDS, S3 archives, EFS, EBS snapshot lifecycle, AWS Backup."""

from __future__ import annotations

from tests.infra.templates import load, properties, resource
from tools.cfn_model import environment_model

DATA = load("stacks/data.yaml")


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
