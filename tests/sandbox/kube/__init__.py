"""The Kubernetes side: API server, store, auth, controllers and their pure helpers."""
