"""The sandbox's AWS endpoint: EC2, RDS and ElastiCache on loopback.

moto's server speaks the wire protocols (query API, XML answers, AWS error
codes); `hooks` makes the calls that matter to a game day real (a forced
failover promotes the standby, a stopped instance powers its node off) through
`effects`, and `wire` answers what moto would not (unknown actions, bad
parameters) the way AWS does. Clients find it through `AWS_ENDPOINT_URL`.
"""
