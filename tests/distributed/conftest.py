"""A two-node Ray cluster on this host, started by the suite itself (Ray's own
`ray.cluster_utils.Cluster`), and Docents on it. Skipped, saying why, where Ray is not installed
(`pip install '.[distributed]'`; `make test` installs it)."""

from __future__ import annotations

import os

import pytest

# Ray names a node by the address it would reach the outside world from; on a host whose address
# is not loopback its nodes would talk over that interface. Held to 127.0.0.1, no traffic leaves
# the host. (Read when Ray is imported: set before it.)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="Ray is not installed: pip install '.[distributed]' (make test does)")

CPUS_PER_NODE = 2  # logical: what Ray may place on a node, not cores of its own
OBJECT_STORE_BYTES = 256 << 20  # per node; Ray's default (30% of the memory) is far more than tests need


@pytest.fixture(scope="package")
def ray_cluster():
    from ray.cluster_utils import Cluster

    node = {"num_cpus": CPUS_PER_NODE, "node_ip_address": "127.0.0.1", "object_store_memory": OBJECT_STORE_BYTES}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()  # this process's connection (made by Docent), then every node the suite started
    cluster.shutdown()
