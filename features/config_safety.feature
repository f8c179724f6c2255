@predeploy @config_safety @staging @app @config_api
Feature: Change safety gates on the config API
  The plan's Change Safety Gates, checked over HTTP against the app started on a staging copy restored from
  the newest backup, never against production: critical config keys need two-step approval, sensitive keys
  are blocked from dashboard mutation and stay in the secret manager, every config response is signed, and
  every change is audited in the audit table (config_change_history in the plan). Known secret values are
  planted in the app's environment so that their absence from every response and audit row can be proven;
  the report shows them redacted. Every probe uses a fresh value and puts the old value back the same way.

  Background:
    Given the config API of the app started on the staging copy, with known secret values planted

  Scenario: The config API declares which keys are critical and which are sensitive
    Then the config API flags at least one critical key and one sensitive key

  Scenario: Critical config keys require two-step approval
    When a change to each critical key is proposed, approved by its own proposer, and then by a second approver
    Then each change stayed pending, with the old value in force, until it was approved
    And no actor could approve a change they had proposed themselves
    And each change took effect once a second, authorised approver approved it
    And every change the gate made is recorded in the audit table with actor, key, time and status

  Scenario: Sensitive config keys are blocked from dashboard mutation
    When a change to each sensitive key is attempted through the config API
    Then every attempt is refused and the key keeps the value held in the secret manager
    And every change the gate made is recorded in the audit table with actor, key, time and status

  Scenario: Config change responses are signed
    When an ordinary config key is changed and put back through the config API
    Then every config API response carried a valid Ed25519 signature over its exact body
    And copies of a signed response with one body byte or the signature altered are rejected

  Scenario: Every config change is audited and no secret value leaks
    When operators propose, approve, reject and apply config changes and try to change sensitive keys
    Then every change the gate made is recorded in the audit table with actor, key, time and status
    And no value of a sensitive key appears in any config API response or audit row
