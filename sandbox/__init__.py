"""The sandbox: local staging with a Kubernetes API emulator, real processes and databases.

Only the sandbox's own code and the `resilience sandbox` command import this
package; suites, experiments and load tests reach it through the Kubernetes API
and boto3 like any other cluster (enforced by the import-linter contract).
"""
