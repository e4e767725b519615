"""Authentication and RBAC authorization of the sandbox's API server (see README there)."""
