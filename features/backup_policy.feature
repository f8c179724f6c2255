@monthly @backup_policy
Feature: Backup strategy
  The plan's "Backup Strategy", checked against the deployment's real object storage and its live Redis.
  Nothing in production is written: storage is only listed and read, Redis is only asked CONFIG GET and
  INFO persistence; the one exception is a canary object in the uploads bucket, and only where the drill
  configuration allows it (storage.allow_canary_write).
  A scenario about a part the target does not have (Redis, base backups, an uploads bucket; drill.toml says
  which) is reported as not applicable, with the setting that says so. A target of several databases
  ([[databases]] in drill.toml) has the logical dumps of each checked under its own prefix (@each_database).
  Each sentence states the plan's number so the report shows what was checked; the drill takes the number
  from drill.toml and stops with a configuration error if the two differ.

  @each_database
  Scenario: PostgreSQL is dumped with pg_dump at least every 6 hours
    Given the logical backups in the deployment's object storage
    Then the newest logical backup is at most 6 hours old
    And no two consecutive logical backups of the last 14 days are more than 6 hours apart

  @each_database
  Scenario: Compressed logical dumps are kept for 14 days
    Given the logical backups in the deployment's object storage
    Then the logical backups cover the last 14 days and none older than 14 days plus the retention grace is kept
    And every logical backup is compressed, as its own header bytes declare
    And every logical backup has a manifest whose sha256 and size match the object

  @off_server
  Scenario: Backups are stored in off-server object storage
    Then the backup storage endpoint is a different host from the database server

  @base_backups
  Scenario: A daily full snapshot is taken and 7 daily and 4 weekly snapshots are kept
    Given the daily and weekly base backups in the deployment's object storage
    Then a daily base backup exists for each of the last 7 days
    And a weekly base backup exists for each of the last 4 weeks
    And no more than 7 daily and 4 weekly base backups are kept
    And the newest base backup passes pg_verifybackup against its backup manifest and WAL

  @redis
  Scenario: Redis takes RDB snapshots
    Given the persistence settings and status of the live Redis
    Then Redis has RDB save rules and its last background save succeeded at most 24 hours ago

  @redis
  Scenario: Redis persists every write with appendonly yes
    Given the persistence settings and status of the live Redis
    Then Redis has appendonly yes and its last append-only file write succeeded

  @redis
  Scenario: Redis backup files are copied off-server daily
    Given the Redis RDB copies in the deployment's object storage
    Then a Redis RDB copy exists for each of the last 7 days
    And the newest Redis RDB copy passes redis-check-rdb

  @uploads
  Scenario: Uploaded proofs and images keep deleted objects for at least 30 days
    Then the uploads bucket has versioning Enabled
    And a lifecycle rule of the uploads bucket keeps noncurrent versions 30 days and no rule expires them sooner

  @uploads
  Scenario: A deleted upload can be recovered from its previous version
    Given the drill configuration allows a canary write to the uploads bucket
    Then a canary object deleted from the uploads bucket is read back from its previous version

  Scenario: The backup bucket keeps deleted backups for at least 30 days
    Then the backup bucket has versioning Enabled
    And no lifecycle rule of the backup bucket expires noncurrent versions sooner than 30 days
