"""Commands that run Docent: serve (the Streamlit app) and prepare (the embedding model, now)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from retrieval.settings import prepare_home


def prepare(docent, args, as_json: bool) -> int:
    from retrieval.embed import export_folder, quantize
    from retrieval.index import gpu

    embedder = docent.embedder
    info = {
        "model": embedder.name,
        "backend": embedder.backend,
        "precision": embedder.precision,
        "precision_reason": embedder.precision_reason,
    }
    if embedder.backend != "torch":
        folder = export_folder(embedder.name, docent.settings.model_cache)
        info.update(folder=str(folder), int8=embedder.int8_report)
    why_not_gpu = "DOCENT_GPU_SEARCH is off" if not docent.settings.gpu_search else gpu.unavailable_reason()
    info["search"] = {"on": "cpu" if why_not_gpu else "gpu", "why_not_gpu": why_not_gpu, "gpus": gpu.devices()}
    info["answers"] = docent.backend.description
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['model']}: {info['backend']}" + (f", kept in {info['folder']}" if "folder" in info else ""))
    print(f"embedding precision: {info['precision']} ({info['precision_reason']})")
    if info.get("int8"):
        report = info["int8"]
        print(
            f"int8 model {'used' if report['accepted'] else 'not used'}: {quantize.verdict(report)},"
            f" on {report['held_out_texts']} held-out texts"
        )
    print(f"answers: {info['answers']}")
    if why_not_gpu:
        print(f"vector search: on the CPU ({why_not_gpu})")
    else:
        best = max(info["search"]["gpus"], key=lambda d: d["free_memory"])
        print(
            f"vector search: on GPU {best['id']}, {best['name']} ({best['free_memory'] >> 20:,} of "
            f"{best['total_memory'] >> 20:,} MiB free)"
        )
    return 0


def cluster_status(docent, args, as_json: bool) -> int:
    status = docent.cluster_status()
    if as_json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"{len(status['nodes'])} node(s):")
    for node in status["nodes"]:
        state = "alive" if node["alive"] else "dead"
        print(f"  {node['node']}  {node['address']}  {state}, {node['cpus']:g} CPU, {node['gpus']:g} GPU")
    if not status["shards"]:
        print("no sharded collections")
    for shard in status["shards"]:
        size = f"{shard['documents']} documents, {shard['chunks']} chunks" if "chunks" in shard else "size unknown"
        print(f"  {shard['collection']} shard {shard['shard']}: {size}, {shard['health']}")
    return 1 if any(s["health"] != "ok" for s in status["shards"]) else 0


def serve_app(args, settings) -> int:
    app = Path(__file__).parents[1] / "app" / "main.py"  # webapp/app/main.py
    os.environ["DOCENT_HOME"] = str(settings.home)
    if settings.ray_address:  # `docent --ray ADDRESS serve`: the app runs on the cluster too
        os.environ["DOCENT_RAY_ADDRESS"] = settings.ray_address
    prepare_home(settings.home)
    # `python -m` puts the working directory first on sys.path; started from a source checkout,
    # that would shadow the installed package (and its compiled engine) with the bare sources.
    os.chdir(settings.home)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    os.execv(sys.executable, command)
    return 0  # not reached
