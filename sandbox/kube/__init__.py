"""A Kubernetes API emulator: store, HTTP API server, controllers and kubelets."""
