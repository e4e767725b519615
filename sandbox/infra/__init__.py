"""The sandbox's real backing services, on loopback addresses of 127.0.3.0/24.

- `postgres` — the "RDS" instance `harmonyflow-db`: PostgreSQL 15 primary with a
  synchronous hot standby (127.0.3.11, .12) behind its DNS name, `failover()`.
- `rds_status` — the RDS instance status state machine and event log (pure).
- `redis_cluster` — the "ElastiCache" replication group `harmonyflow-redis`:
  6 redis-server processes, 3 shards of primary + replica, `failover(shard)`.
- `hostfaults` — a failed host on the wire: its address silenced by nftables, or reset.
- `clusterdns` — the CoreDNS stand-in that answers the RDS endpoint name (TTL 5 s).
- `supervisor` — start, wait for and stop server processes; errors; port checks.
- `nginx_*`, `ingress*` — the NGINX ingress.

Every process is recorded in `<state>/pids/` and dies with its parent.
"""
