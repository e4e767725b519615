"""What the sandbox's AWS account holds, as plain data.

The resources mirror the seed: `harmonyflow-db` (RDS PostgreSQL Multi-AZ),
`harmonyflow-redis` (ElastiCache, cluster mode, three node groups) and one EC2
instance per Kubernetes node, whose id is the node's `providerID`
(`aws:///us-west-2a/i-0a000000000000a`).

Each carries the `AzImpairmentPower` tag AWS FIS's "AZ Availability: Power
Interruption" scenario targets by default (`StopInstances` on instances,
`DisruptRds` on the DB instance, `ElasticacheImpact` on the replication group,
`DisruptSubnet` on the zones' subnets), so its template runs on the sandbox as written.

    >>> parse_provider_id("aws:///us-west-2b/i-0b00000000000000b")
    ('us-west-2b', 'i-0b00000000000000b')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-west-2"
CLUSTER_NAME = "harmonyflow"
DB_ENGINE = "postgres"
DB_ENGINE_VERSION = "15.8"
DB_INSTANCE_CLASS = "db.r6g.large"
CACHE_NODE_TYPE = "cache.r6g.large"
# Not secrets: moto accepts any key; these only make clients sign their requests.
DUMMY_ACCESS_KEY_ID = "sandbox"
DUMMY_SECRET_ACCESS_KEY = "sandbox"
POWER_TAG = "AzImpairmentPower"
POWER_TAG_INSTANCES = "StopInstances"
POWER_TAG_DB = "DisruptRds"
POWER_TAG_CACHE = "ElasticacheImpact"
POWER_TAG_SUBNET = "DisruptSubnet"


def parse_provider_id(provider_id: str) -> tuple[str, str] | None:
    """(zone, instance id) of an EKS node's `spec.providerID`, None if it is not AWS's."""
    prefix = "aws:///"
    if not provider_id.startswith(prefix):
        return None
    zone, _, instance_id = provider_id[len(prefix) :].partition("/")
    if not zone or not instance_id.startswith("i-"):
        return None
    return zone, instance_id


@dataclass(frozen=True)
class NodeInstance:
    """The EC2 instance behind one Kubernetes node."""

    instance_id: str
    zone: str
    private_ip: str
    node_name: str
    instance_type: str
    nodegroup: str

    def tags(self) -> dict[str, str]:
        """The tags an EKS managed node group puts on its instances."""
        return {
            "Name": f"{CLUSTER_NAME}-{self.nodegroup}",
            "eks:cluster-name": CLUSTER_NAME,
            "eks:nodegroup-name": self.nodegroup,
            f"kubernetes.io/cluster/{CLUSTER_NAME}": "owned",
            "kubernetes.io/hostname": self.node_name,
            POWER_TAG: POWER_TAG_INSTANCES,
        }


BROKER_ZONES = ("us-west-2a", "us-west-2b", "us-west-2c")
BROKER_INSTANCE_TYPE = "m5.large"


def broker_instance_id(index: int) -> str:
    """The fixed EC2 id of broker node `index` (0-based): `i-0f000000000000031` for rabbitmq-1.

    >>> broker_instance_id(2)
    'i-0f000000000000033'
    """
    return f"i-0f0000000000000{31 + index:02d}"


@dataclass(frozen=True)
class BrokerInstance:
    """The EC2 instance of one self-managed RabbitMQ node (`rabbitmq-1` ...)."""

    instance_id: str
    zone: str
    private_ip: str
    name: str
    index: int

    @classmethod
    def of(cls, index: int, name: str, host: str) -> BrokerInstance:
        zone = BROKER_ZONES[index % len(BROKER_ZONES)]
        return cls(broker_instance_id(index), zone, host, name, index)

    def tags(self) -> dict[str, str]:
        return {"Name": self.name, "harmonyflow:role": "rabbitmq", POWER_TAG: POWER_TAG_INSTANCES}


@dataclass(frozen=True)
class DbView:
    """What DescribeDBInstances shows of a sandbox DB instance right now."""

    status: str
    zone: str
    secondary_zone: str
    address: str
    port: int


@dataclass(frozen=True)
class CacheMember:
    """One node of a node group, primary first, as DescribeReplicationGroups lists it."""

    cache_cluster_id: str
    zone: str
    address: str
    port: int


@dataclass(frozen=True)
class AwsEvent:
    """An entry for DescribeEvents (RDS or ElastiCache)."""

    source_identifier: str
    source_type: str  # "db-instance" | "replication-group" | "cache-cluster"
    message: str
    date: datetime
