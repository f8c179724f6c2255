@monthly @restore_drill
Feature: Monthly restore drill into isolated staging
  The plan's Restore Procedure and Recovery Drills, run every month: the newest backups are restored into
  throwaway staging servers (never production), the restored data is checked against the manifest written
  when the backup was taken, the application is started against the copy and must answer its deep health
  check, recovery time and data loss are measured against the objectives, and cut-over is GO only when all
  of this held. What the target does not have (Redis, an application, base backups, an audit table; drill.toml
  says which) is not applicable: reported as such, never failed, and the recovery time then stops at the last
  step the target has. A target of several databases ([[databases]] in drill.toml) has each restored into a
  staging copy of its own and checked by the scenarios tagged @each_database, once per database.

  @staging @each_database
  Scenario: The newest logical backup restores into isolated staging
    Given the newest logical backup restored into isolated staging
    Then the restored dump's size and sha256 match the manifest written when it was taken
    And the staging database runs on a throwaway server this drill created, not on production
    And pg_restore loaded the whole dump with parallel jobs, its log kept as evidence

  @staging @each_database
  Scenario: Row counts of the critical tables match the backup's manifest
    Given the newest logical backup restored into isolated staging
    Then each critical table holds exactly the rows the backup's manifest counted
    And no critical table holds fewer rows than the previous drill restored, beyond the shrink drill.toml allows

  @staging @each_database
  Scenario: The last 24 hours of inserts are present
    Given the newest logical backup restored into isolated staging
    Then each critical table holds the rows inserted in the 24 hours before the backup

  @staging @each_database @audit
  Scenario: The audit records of the last 24 hours are present
    Given the newest logical backup restored into isolated staging
    Then the audit table holds records of the 24 hours before the backup

  @staging @each_database
  Scenario: The restored database has no corruption
    Given the newest logical backup restored into isolated staging
    Then pg_amcheck finds no corruption in the restored database

  @staging @redis
  Scenario: The newest Redis copy restores with its keys, their types and sampled values
    Given the newest logical backup restored into isolated staging
    Then the restored Redis holds each key sampled when the copy was taken, with its type and value, and as many keys of each type as the copy

  @staging @app
  Scenario: The application starts against staging and its deep health is healthy
    Given the newest logical backup restored into isolated staging
    When the application is started against the staging copy
    Then the application's deep health endpoint answers healthy for every component

  @staging
  Scenario: Recovery time and data loss are measured against the objectives
    Given the newest logical backup restored into isolated staging
    When the recovery reaches its last applicable step: the application healthy, else the restored database verified
    Then the recovery time from the incident to that step is within the RTO objective
    And the recovery time projected to production's size is within the RTO objective
    And the data lost since the newest restored data is within the RPO objective

  @staging @each_database
  Scenario: Data loss is measured to the second for each store from its newest heartbeat
    Given the newest logical backup restored into isolated staging
    Then the RPO of PostgreSQL and of Redis, in hours to the second up to their newest heartbeats, is within each objective

  @base_backups
  Scenario: The newest base backup restores physically and reaches consistency
    Given the newest base backup restored into its own throwaway server
    Then the restored cluster is consistent and answers queries on the critical tables

  Scenario: Restore drills are run every month
    Then the previous restore drill of this target, read from the drill records, is at most a month old

  Scenario: Cut-over to production is decided only after staging verification
    Then cut-over is GO only because every restore step passed and both objectives were met
