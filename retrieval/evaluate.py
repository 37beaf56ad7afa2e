"""`docent eval`: retrieval quality of every search mode and fusion on a labelled set.

Two kinds of sets:
- BEIR (a folder with corpus.jsonl, queries.jsonl, qrels/test.tsv): documents are ingested as
  text, and ranked documents are judged by the graded qrels.
- Questions about files (a .jsonl of {"question", "source", "page"}; sources are PDF paths,
  relative to the file): the PDFs are ingested, and a hit counts when it comes from the right
  page of the right file.
- Questions about a collection (a .jsonl of {"question", "collection", "evidence": [{"source",
  "page"}]}, as the app's feedback export writes them): nothing is ingested; the questions are
  asked of that collection, and a hit counts when it comes from an evidence page (or web page).
- Questions each about one file, with gold answers and no pages (a .jsonl of {"question",
  "source", "answer"}, TAT-QA's form; "answer" a string, a number or a list of spans that must
  all be stated, "answer_type" optional): the files are ingested and each question is asked
  with the search limited to its file. Only answer metrics are scored.

Metrics: nDCG@10 (linear gains, as trec_eval), Recall@10 and @100, MRR (within 100), and for
page sets page hit@1/3/5/10.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ingest import Document, Page
from ingest.sources import Source
from retrieval.search import search as run_search

RUNS = {  # name -> (mode, fusion)
    "vector": ("vector", "rrf"),
    "keyword": ("keyword", "rrf"),
    "hybrid-leaders": ("hybrid", "leaders"),
    "hybrid-rrf": ("hybrid", "rrf"),
    "hybrid-convex": ("hybrid", "convex"),
}
DEFAULT_RUN = "default"  # Docent.search as configured: the default fusion, files named by the question
DEPTH = 100


@dataclass
class EvalSet:
    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> {unit: grade}; a unit is a doc id or "source#page"
    documents: list[Document] = field(default_factory=list)  # BEIR: ingested as text
    files: list[Path] = field(default_factory=list)  # page sets: PDFs to ingest
    by_page: bool = False
    skipped: list[str] = field(default_factory=list)  # documents that could not be ingested
    # query id -> the gold facts the answer must state (one, or each span of a multi-span answer)
    answers: dict[str, list[str]] = field(default_factory=dict)
    collection: str | None = None  # questions about a collection already ingested
    scopes: dict[str, str] = field(default_factory=dict)  # query id -> the one file it is asked of
    kinds: dict[str, str] = field(default_factory=dict)  # query id -> its kind of answer ("arithmetic")
    halves: dict[str, str] = field(default_factory=dict)  # query id -> "A" or "B", by its document

    @property
    def answers_only(self) -> bool:
        """Questions each asked of one file, with no pages to score retrieval by."""
        return bool(self.scopes) and not self.qrels


def load_eval_set(path: str | Path) -> EvalSet:
    path = Path(path)
    if path.is_dir():
        return _load_beir(path)
    if path.suffix == ".jsonl":
        return _load_page_questions(path)
    raise ValueError(f"{path}: expected a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a .jsonl of questions")


def _read_jsonl(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise ValueError(f"{path} is missing") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON lines ({exc})") from None


def _load_beir(folder: Path) -> EvalSet:
    qrels: dict[str, dict[str, int]] = {}
    qrels_file = folder / "qrels" / "test.tsv"
    if not qrels_file.exists():
        raise ValueError(f"{folder}: no qrels/test.tsv")
    for n, line in enumerate(qrels_file.read_text().splitlines()):
        parts = line.split("\t")
        if n == 0 and parts[0] == "query-id":
            continue
        if len(parts) != 3:
            raise ValueError(f"{qrels_file}:{n + 1}: expected query-id, corpus-id, score")
        if int(parts[2]) > 0:
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    documents = []
    for row in _read_jsonl(folder / "corpus.jsonl"):
        text = row.get("text", "")
        title = (row.get("title") or "").strip()
        documents.append(
            Document(
                source=str(row["_id"]),
                title=title or str(row["_id"]),
                kind="text",
                content_hash=hashlib.sha256(f"{title}\n{text}".encode()).hexdigest(),
                pages=[Page(1, text)],
            )
        )
    queries = {str(r["_id"]): r["text"] for r in _read_jsonl(folder / "queries.jsonl") if str(r["_id"]) in qrels}
    return EvalSet(folder.name, queries, qrels, documents=documents)


def _load_page_questions(path: Path) -> EvalSet:
    rows = _read_jsonl(path)
    if rows and all("evidence" in row for row in rows):
        return _load_collection_questions(path, rows)
    if rows and all("page" not in row and "answer" in row for row in rows):
        return _load_file_questions(path, rows)
    queries, qrels, files, answers = {}, {}, [], {}
    for n, row in enumerate(rows, start=1):
        try:
            question, source, page = row["question"], row["source"], int(row["page"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}:{n}: each line needs question, source and page") from None
        file = (path.parent / source).resolve()
        if file not in files:
            files.append(file)
        queries[str(n)] = question
        pages = row.get("pages") or [page]  # every evidence page counts as found
        qrels[str(n)] = {f"{file}#{int(p)}": 1 for p in pages}
        if row.get("answer") not in (None, ""):
            answers[str(n)] = gold_facts(row["answer"])
    halves = {str(n): half_of(str(row["source"])) for n, row in enumerate(rows, start=1)}
    return EvalSet(path.stem, queries, qrels, files=files, by_page=True, answers=answers, halves=halves)


def _load_file_questions(path: Path, rows: list[dict]) -> EvalSet:
    queries, files, answers, scopes, kinds, halves = {}, [], {}, {}, {}, {}
    for n, row in enumerate(rows, start=1):
        try:
            question, source = str(row["question"]), str(row["source"])
        except KeyError:
            raise ValueError(f"{path}:{n}: each line needs question, source and answer") from None
        file = (path.parent / source).resolve()
        if file not in files:
            files.append(file)
        qid = str(row.get("id") or n)
        queries[qid] = question
        answers[qid] = gold_facts(row["answer"])
        scopes[qid] = str(file)
        kinds[qid] = str(row.get("answer_type") or "")
        halves[qid] = half_of(source)
    return EvalSet(path.stem, queries, {}, files=files, answers=answers, scopes=scopes, kinds=kinds, halves=halves)


def gold_facts(answer) -> list[str]:
    """A gold answer as the facts an answer must state: each span of a list, else the answer."""
    if isinstance(answer, list):
        return [str(a) for a in answer if str(a).strip()]
    return [str(answer)]


def half_of(name: str) -> str:
    """ "A" or "B": the half of a set a question is in, by its document as the set names it
    ("docs/report-000-3ffd9053.html"), so that code developed on one half can be checked on
    the other; the split never changes."""
    return "A" if hashlib.sha1(name.encode()).digest()[0] % 2 == 0 else "B"


def _load_collection_questions(path: Path, rows: list[dict]) -> EvalSet:
    queries, qrels, answers, collections = {}, {}, {}, set()
    for n, row in enumerate(rows, start=1):
        try:
            question, evidence = str(row["question"]), row["evidence"]
            qrels[str(n)] = {f"{e['source']}#{e.get('page')}": 1 for e in evidence}
            collections.add(str(row["collection"]))
        except (KeyError, TypeError):
            raise ValueError(
                f"{path}:{n}: each line needs question, collection and evidence (a list of source and page)"
            ) from None
        if not qrels[str(n)]:
            raise ValueError(f"{path}:{n}: the evidence list is empty")
        queries[str(n)] = question
        if row.get("answer") not in (None, ""):
            answers[str(n)] = gold_facts(row["answer"])
    if len(collections) > 1:
        raise ValueError(f"{path}: its questions are about several collections ({', '.join(sorted(collections))})")
    return EvalSet(path.stem, queries, qrels, by_page=True, answers=answers, collection=collections.pop())


# ---- metrics --------------------------------------------------------------------------------


def ndcg_at(ranking: list[str], grades: dict[str, int], k: int = 10) -> float:
    dcg = sum(grades.get(u, 0) / math.log2(i + 2) for i, u in enumerate(ranking[:k]))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(grades.values(), reverse=True)[:k]))
    return dcg / ideal if ideal > 0 else 0.0


def recall_at(ranking: list[str], grades: dict[str, int], k: int) -> float:
    return len(set(ranking[:k]) & set(grades)) / len(grades) if grades else 0.0


def reciprocal_rank(ranking: list[str], grades: dict[str, int]) -> float:
    return next((1.0 / (i + 1) for i, u in enumerate(ranking) if u in grades), 0.0)


def _metrics(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]], by_page: bool) -> dict[str, float]:
    rows = []
    for qid, ranking in rankings.items():
        grades = qrels[qid]
        row = {
            "ndcg@10": ndcg_at(ranking, grades),
            "recall@10": recall_at(ranking, grades, 10),
            "recall@100": recall_at(ranking, grades, 100),
            "mrr": reciprocal_rank(ranking, grades),
        }
        if by_page:
            row.update({f"page_hit@{k}": float(bool(set(ranking[:k]) & set(grades))) for k in (1, 3, 5, 10)})
            files = {unit.rsplit("#", 1)[0] for unit in grades}
            row["file_hit@5"] = float(any(unit.rsplit("#", 1)[0] in files for unit in ranking[:5]))
        rows.append(row)
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} if rows else {}


# ---- running --------------------------------------------------------------------------------


def evaluate(
    docent, eval_set: EvalSet, *, collection: str, progress: Callable[[str, int, int], None] | None = None
) -> dict:
    """Ingests the set's documents (unchanged ones cost nothing), then scores every run."""
    if eval_set.collection is not None:
        if collection not in docent.collection_names():
            raise ValueError(f"{eval_set.name} asks about collection '{collection}', which does not exist")
        outcomes = []
    elif eval_set.documents:
        outcomes = docent.ingest_documents(eval_set.documents, collection=collection, progress=progress)
    else:
        outcomes = docent.ingest(
            [Source.from_path(f) for f in eval_set.files], collection=collection, progress=progress
        )
    failed = [o for o in outcomes if not o.ok]
    if outcomes and len(failed) == len(outcomes):
        raise ValueError(f"no document of {eval_set.name} could be ingested: {failed[0].source}: {failed[0].error}")
    # A few unusable documents (Cranfield has two without text) only count as never found.
    eval_set.skipped = [f"{o.source}: {o.error}" for o in failed]

    if eval_set.answers_only:
        return {}
    store = docent.collection(collection)
    ids = list(eval_set.queries)
    vectors = docent.embedder.embed([eval_set.queries[q] for q in ids])
    results = {}
    for name, (mode, fusion) in RUNS.items():
        rankings = {}
        for qid, vector in zip(ids, vectors):
            hits = run_search(
                store,
                eval_set.queries[qid],
                query_vector=vector,
                k=DEPTH,
                mode=mode,
                fusion=fusion,
                rrf_k=docent.settings.rrf_k,
                alpha=docent.settings.fusion_alpha,
            )
            rankings[qid] = _ranking(hits, eval_set.by_page)
        results[name] = _metrics(rankings, eval_set.qrels, eval_set.by_page)
    # What a user gets: the settings' mode and fusion, and a question that names files searched in them.
    rankings = {
        qid: _ranking(docent.search(eval_set.queries[qid], k=DEPTH, collection=collection), eval_set.by_page)
        for qid in ids
    }
    results[DEFAULT_RUN] = _metrics(rankings, eval_set.qrels, eval_set.by_page)
    return results


def _ranking(hits, by_page: bool) -> list[str]:
    units = [f"{h.source}#{h.page}" if by_page else h.source for h in hits]
    return list(dict.fromkeys(units))  # a unit counts at its best rank only


def format_table(results: dict) -> str:
    keys = list(next(iter(results.values())).keys())
    lines = ["| run | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in keys) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(next(iter(results.values())).keys())
    x = np.arange(len(keys))
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(max(7, 1.4 * len(keys)), 4))
    for n, (name, row) in enumerate(results.items()):
        ax.bar(x + n * width, [row[k] for k in keys], width, label=name)
    ax.set_xticks(x + width * (len(results) - 1) / 2, keys)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
