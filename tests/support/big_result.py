"""A worker function whose result is large: sending it back takes the worker a while."""


def big_bytes(size: int) -> bytes:
    return b"x" * size
