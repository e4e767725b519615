"""Streaming subresources of pods: `exec` and `portforward` (WebSocket, SPDY tunnelled)."""
