"""Connecting to a Ray cluster, a sharded collection's shard actors, and what the cluster holds.

A sharded collection is a folder under the data home, as any collection, holding `shards.json`
(how many shards it has, fixed when it is made) and one folder per shard (`shard-0`, ...), each
an ordinary collection folder. Shard i is a detached, named Ray actor
("docent-shard/<folder hash>/<i>"), so every Docent process on the cluster (the app, the API, a
CLI ingest) talks to the same shard actors, and they outlive the process that started them.
Ray restarts a shard actor that dies (max_restarts) and retries the call in flight; it opens
the same folder again. Its folder must be reachable where it runs: a shared file system, or
nodes pinned by a custom resource (`shard_resource`) that carry their own disks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import ray

from retrieval.distributed import LAYOUT_FILE
from retrieval.distributed.router import ShardedCollection
from retrieval.distributed.shard import Shard
from retrieval.store import CollectionError

log = logging.getLogger(__name__)

NAMESPACE = "docent"
SHARD_RESTARTS = -1  # a shard actor is restarted however often it dies
CONNECT_TIMEOUT = 5.0  # seconds to reach the cluster's address at all
START_TIMEOUT = 120.0  # seconds for a shard actor to start (placed, its collection opened)
CALL_RETRIES = 2  # a call in flight when its shard died is sent again to the restarted one


@dataclass(frozen=True)
class ShardPlacement:
    """How shard actors are placed: cores each reserves (Ray sets its threads to them), the
    custom resource a node must offer to hold one (None: any node), and whether they search on
    a GPU of their node."""

    cpus: float = 1.0
    resource: str | None = None
    gpu_search: bool = False


def connect(address: str, home: Path) -> None:
    """Joins the Ray cluster at address ("auto", "host:port", "ray://host:port") once per process.

    Ray puts the driver's working directory first on its workers' import path; run from a
    Docent source checkout, the workers would import that (without the compiled engine) instead
    of the installed Docent. So the driver joins from the data home."""
    if ray.is_initialized():
        return
    _check_reachable(address)
    before = os.getcwd()
    os.chdir(home)
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise CollectionError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
    finally:
        os.chdir(before)


def _check_reachable(address: str) -> None:
    """Ray waits minutes for a cluster that is not there; a host:port that refuses a connection
    is said at once."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise CollectionError(f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc}") from None


def is_sharded(folder: Path) -> bool:
    return (folder / LAYOUT_FILE).is_file()


def shard_count(folder: Path) -> int:
    try:
        return int(json.loads((folder / LAYOUT_FILE).read_text())["shards"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CollectionError(f"{folder / LAYOUT_FILE} cannot be read: {exc}") from None


def open_sharded(
    folder: Path,
    *,
    model_name: str,
    dim: int,
    shards: int,
    timeout: float,
    placement: ShardPlacement = ShardPlacement(),
) -> ShardedCollection:
    """The sharded collection in folder, made with `shards` shards if it is new (an existing
    one keeps its own count), its shard actors found on the cluster or started."""
    folder = Path(folder)
    if (folder / "docent.sqlite3").exists():
        raise CollectionError(
            f"collection '{folder.name}' is a single-machine collection; ingest into a new collection to shard it"
        )
    if not is_sharded(folder):
        if shards < 1:
            raise CollectionError(f"a sharded collection needs at least one shard, got {shards}")
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / (LAYOUT_FILE + ".part")
        partial.write_text(json.dumps({"shards": shards}))
        partial.replace(folder / LAYOUT_FILE)
    count = shard_count(folder)
    handles = _shard_actors(folder, count, model_name, dim, placement)
    return ShardedCollection(folder.name, folder, handles, model_name=model_name, dim=dim, timeout=timeout)


def actor_name(folder: Path, shard: int) -> str:
    digest = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:12]
    return f"docent-shard/{digest}/{shard}"


def _shard_actors(folder: Path, count: int, model_name: str, dim: int, placement: ShardPlacement) -> list:
    """The shard actors, found or started; all are asked at once whether they hold their files,
    so shards opening their collections (an index rebuilt, say) open side by side."""
    started = [_start_shard(folder, i, model_name, dim, placement) for i in range(count)]
    held = ray.get([actor.holds_its_files.remote() for actor in started], timeout=START_TIMEOUT)
    # A running actor whose files were deleted (the collection deleted and made again outside
    # Docent) is replaced by one that opens the folder as it is now.
    for i in [i for i, ok in enumerate(held) if not ok]:
        ray.kill(started[i], no_restart=True)
        started[i] = _start_shard(folder, i, model_name, dim, placement)
    return started


def _start_shard(folder: Path, shard: int, model_name: str, dim: int, placement: ShardPlacement):
    options = {
        "name": actor_name(folder, shard),
        "namespace": NAMESPACE,
        "get_if_exists": True,
        "lifetime": "detached",
        "max_restarts": SHARD_RESTARTS,
        "max_task_retries": CALL_RETRIES,
        "max_concurrency": 4,  # searches run side by side; the collection serialises writes
        "num_cpus": placement.cpus,
    }
    if placement.resource:
        options["resources"] = {placement.resource: 0.001}
    return (
        ray.remote(Shard)
        .options(**options)
        .remote(str(folder / f"shard-{shard}"), model_name, dim, placement.gpu_search)
    )


def stop_shards(folder: Path) -> int:
    """Ends the shard actors of a collection (their files stay); how many were running."""
    stopped = 0
    for shard in range(shard_count(folder)):
        try:
            ray.kill(ray.get_actor(actor_name(folder, shard), namespace=NAMESPACE), no_restart=True)
            stopped += 1
        except ValueError:  # not running
            pass
    return stopped


def cluster_status(collections: dict[str, ShardedCollection], timeout: float) -> dict:
    """The cluster's nodes and, per sharded collection, each shard's size and health."""
    nodes = [
        {
            "node": node["NodeID"][:12],
            "address": node["NodeManagerAddress"],
            "alive": node["Alive"],
            "cpus": node.get("Resources", {}).get("CPU", 0),
            "gpus": node.get("Resources", {}).get("GPU", 0),
        }
        for node in ray.nodes()
    ]
    shards = []
    for name, collection in sorted(collections.items()):
        refs = {i: actor.status.remote() for i, actor in enumerate(collection.shards)}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
        for i, ref in refs.items():
            entry = {"collection": name, "shard": i}
            if ref not in ready:
                ray.cancel(ref)
                entry["health"] = f"not answering within {timeout:g} s"
            else:
                try:
                    entry |= ray.get(ref) | {"health": "ok"}
                except ray.exceptions.RayError as exc:
                    entry["health"] = f"failed: {type(exc).__name__}"
            shards.append(entry)
    return {"nodes": nodes, "shards": shards}
