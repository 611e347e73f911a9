-- One database role per function, each with only the privileges its code uses. They log in with
-- IAM authentication (membership in rds_iam, on RDS): no password exists for any of them, and the
-- functions no longer hold the master user's secret (only the migrations do, to run these files).
-- Roles are cluster-wide, so creating one tolerates its existence (another database of the same
-- server, or a concurrent run); grants are per database.

DO $$
DECLARE
    role_name TEXT;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[
        'meridian_ledger',        -- LedgerFunction: writes trades and positions
        'meridian_surveillance',  -- SurveillanceFunction: its activity log and findings
        'meridian_orders_api',    -- OrdersApiFunction: reads positions and trades
        'meridian_compliance',    -- ComplianceExport/VerifyFunction: reads trades
        'meridian_integrity',     -- ValidateIntegrityFunction (both regions): counts trades
        'meridian_migrations'     -- MigrationsFunction on a read replica: reads the history
    ] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN', role_name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
            EXECUTE format('GRANT rds_iam TO %I', role_name);
        END IF;
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role_name);
    END LOOP;
END
$$;

GRANT SELECT, INSERT ON trades TO meridian_ledger;
GRANT SELECT, INSERT, UPDATE ON positions TO meridian_ledger;

GRANT SELECT, INSERT ON surveillance_activity TO meridian_surveillance;
GRANT SELECT, INSERT, UPDATE ON surveillance_findings TO meridian_surveillance;

GRANT SELECT ON trades, positions TO meridian_orders_api;
GRANT SELECT ON trades TO meridian_compliance;
GRANT SELECT ON trades TO meridian_integrity;
GRANT SELECT ON schema_migrations TO meridian_migrations;
