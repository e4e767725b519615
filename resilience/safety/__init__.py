"""Safety first: what may be touched, and how whatever was touched is put back.

- `refusals`      the interlocks as pure decisions: a production context without the
                  typed confirmation, a namespace off the allowlist, a blast radius
                  beyond the budget, a broker quorum at risk -- each a `Refusal` whose
                  message the CLI, the Chaos Toolkit controls and the suites share
- `undo_journal`  every undo written down before the fault it undoes (JSON lines,
                  `reports/recovery.jsonl`), so `resilience recover` can replay what a
                  killed run left behind

Chaos faults, Locust runs and game days all journal here, which is why it sits below
`resilience.chaos` and `resilience.load` rather than inside either.
"""
