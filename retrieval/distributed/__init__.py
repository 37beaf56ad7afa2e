"""Docent on a Ray cluster: a collection split into shards held by Ray actors, one router that
answers as a single collection does, and the cluster's status.

    shard.py    one shard: a Collection in its own folder, inside a Ray actor
    router.py   ShardedCollection: the Collection interface over the shards (fan out, merge,
                collection-wide BM25, per-shard time-outs)
    cluster.py  connecting to a cluster, starting or finding a collection's shard actors, status

Nothing here is imported unless Docent runs with a Ray address (`docent --ray ADDRESS`,
DOCENT_RAY_ADDRESS); single-machine Docent needs no Ray.
"""

LAYOUT_FILE = "shards.json"  # in a sharded collection's folder: its shard count (cluster.py)
