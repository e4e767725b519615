"""The session-state service the sandbox runs, against real PostgreSQL and Redis."""
