@predeploy @migration_gates @migrations
Feature: Migration gates before each deploy
  The plan's Migration Workflow and Rollback policy, checked before every deploy with Alembic's own API:
  the history is one linear chain ending at the reviewed head, every schema change is tracked by a
  migration file, non-destructive migrations are reversible, a migration once deployed is never edited
  afterwards, destructive ones wait for a fresh full backup, the SQL passes the migration linter, and the
  deployment order is rehearsed on a staging copy restored from the newest backup, never on production.

  Background:
    Given the target's Alembic migrations named in the drill configuration
    And the migration history as Alembic builds it from migrations/versions
    And the waivers approved in the drill configuration

  Scenario: The migration history is one linear chain ending at the expected head
    Then the migration history is one linear chain with a single head at the expected revision

  Scenario: Every schema change is tracked by a migration file in migrations/versions
    Then every file in migrations/versions is a revision of the migration history
    And the migrations applied to an empty database build exactly the schema the models declare

  Scenario: Every non-destructive migration is reversible
    Then every revision downgraded one step and upgraded again leaves an identical schema catalogue

  @staging
  Scenario: The migration history has not been edited after it was deployed
    Given the revisions pending on the staging copy restored from the newest backup
    Then every migration file up to the deployed revision is unchanged since its checksum was recorded

  @staging
  Scenario: A destructive migration is applied only after a full backup checkpoint
    Given the revisions pending on the staging copy restored from the newest backup
    Then each pending migration that drops, truncates or narrows data follows a full backup checkpoint of at most the configured age

  @staging
  Scenario: The SQL of the pending migrations passes the migration linter
    Given the revisions pending on the staging copy restored from the newest backup
    Then the offline SQL of the pending migrations has no finding of a blocking lint rule

  @staging @without_app
  Scenario: The pending migrations are rehearsed on a staging copy of the newest backup, the target having no app
    Given the revisions pending on the staging copy restored from the newest backup
    When the pending migrations are applied with alembic upgrade head
    Then no pending migration held an exclusive table lock or ran longer than the configured budgets
    And alembic current on the staging copy is the expected head

  @staging @app
  Scenario: The deployment order is rehearsed on a staging copy of the newest backup
    Given the revisions pending on the staging copy restored from the newest backup
    And the target app started against the staging copy
    When writes are put in maintenance mode if a pending migration is destructive
    Then an ordinary write is refused while maintenance mode is on
    When the pending migrations are applied with alembic upgrade head
    Then no pending migration held an exclusive table lock or ran longer than the configured budgets
    And alembic current on the staging copy is the expected head
    And the app's startup checks and deep health pass on the migrated copy
    When writes are re-enabled after the migration
    Then an ordinary write is accepted again
