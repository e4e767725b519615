"""The permissions preflight: before anything is disrupted, check that the credentials
may make every request the run will make, and refuse in one line if not.

- `permissions`: a permission (what SelfSubjectAccessReview asks), how a table row
  resolves to permissions, `missing` and the one-line `message` (pure);
- `table`: the one table of what each activity, control, watch and suite requests;
- `needs`: a run's needs derived from what it will run (pure);
- `rbac`: RBAC rule matching over manifests, for checking deploy/gameday (pure);
- `review`: the SelfSubjectAccessReview loop (I/O, bounded).
"""
