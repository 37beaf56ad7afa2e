"""Settings of the Docents the tests run on the suite's two-node Ray cluster (tests/distributed)."""

RAY_SETTINGS = {
    "ray_shards": 2,
    "ray_shard_cpus": 0.5,  # two shards, an embedding actor and extraction tasks fit four CPUs
    "ray_embed_actors": 1,
}
