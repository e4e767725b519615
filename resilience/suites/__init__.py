"""The live suites' library: the helpers behind `suites/`.

`suites/` holds the pytest tests that run against a live target; what they share
and what can be tested without a cluster lives here, one module per concern:
canary pods, drift of the live objects against deploy/base (Deployment, PDB, HPA,
NetworkPolicies) and findings. What the suites run against is `resilience.targets`.
"""
