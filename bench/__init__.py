"""Benchmarks and measurements of the suite itself (see README.md here); never run in CI."""
