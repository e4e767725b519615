"""The backing services (RDS, ElastiCache, RabbitMQ, cluster DNS, nginx ingress) and host faults."""
