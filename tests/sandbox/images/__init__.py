"""The stand-in images the kubelet runs (registry table, test app, Locust, the suite's own)."""
