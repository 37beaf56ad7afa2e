"""Settings of the Docents the tests run on the suite's two-node Ray cluster (tests/distributed)."""

RAY_SETTINGS = {
    "ray_shards": 2,
    # Shard actors outlive a test (detached, as on a real cluster): small reservations leave the
    # cores to the embedding actor and the extraction tasks, also after a node is lost.
    "ray_shard_cpus": 0.1,
    "ray_embed_actors": 1,
}
