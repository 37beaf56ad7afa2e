"""Commands that search and answer: search, ask, and eval (retrieval quality on a labelled set)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from webapp.cli.output import ProgressBar, shorten, where


def search(docent, args, as_json: bool) -> int:
    if not args.query.strip():
        print("error: the search query is empty: type some words to search for", file=sys.stderr)
        return 2
    if unknown := _unknown_sources(docent, args.source):
        print(
            f"error: no document named {', '.join(map(repr, unknown))} in this collection (see `docent list`)",
            file=sys.stderr,
        )
        return 2
    hits = docent.search(args.query, k=args.k, mode=args.mode, sources=args.source)
    _warn_partial(getattr(hits, "missing_shards", ()))
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], indent=2))
        return 0
    if not hits:
        print("no matches")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>2}. {hit.score:.4f}  {where(hit)}")
        print(f"    {shorten(hit.text, 200)}")
    return 0


def ask(docent, args, as_json: bool) -> int:
    if not args.question.strip():
        print("error: the question is empty: type a question", file=sys.stderr)
        return 2
    if unknown := _unknown_sources(docent, args.source):
        print(
            f"error: no document named {', '.join(map(repr, unknown))} in this collection (see `docent list`)",
            file=sys.stderr,
        )
        return 2
    if as_json:
        print(json.dumps(docent.ask(args.question, sources=args.source).to_dict(), indent=2))
        return 0
    stream = docent.ask_stream(args.question, sources=args.source)
    for piece in stream:  # token by token, as the backend writes
        sys.stdout.write(piece)
        sys.stdout.flush()
    print()
    answer = stream.answer
    _warn_partial(answer.missing_shards)
    if answer.citations:
        print()
        for hit in answer.citations:
            print(f"[{hit.ref}] {where(hit)}")
            print(f"    {shorten(hit.text, 300)}")
    elif answer.closest:
        print("\nClosest passages:")
        for hit in answer.closest:
            print(f"  - {where(hit)}: {shorten(hit.text, 160)}")
    return 0


def _warn_partial(missing_shards) -> None:
    if missing_shards:
        print(
            f"docent: partial results: shard(s) {', '.join(map(str, missing_shards))} did not answer in time"
            " (see `docent cluster status`)",
            file=sys.stderr,
        )


def _unknown_sources(docent, sources) -> list[str]:
    known = {d.source for d in docent.documents()}
    return [s for s in sources or () if s not in known]


def evaluate_set(docent, args, as_json: bool) -> int:
    from retrieval.evaluate import evaluate, format_table, load_eval_set, plot

    try:
        eval_set = load_eval_set(args.path)
    except ValueError as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    collection = getattr(args, "collection", None) or eval_set.collection or f"eval-{eval_set.name}"
    bar = ProgressBar()
    bar.label = f"ingesting {eval_set.name}"
    try:
        results = evaluate(docent, eval_set, collection=collection, progress=bar.update)
    except ValueError as exc:
        bar.close()
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    bar.close()
    for problem in eval_set.skipped:
        print(f"docent: skipped {problem}", file=sys.stderr)
    image = (
        plot(
            results, args.plot or Path(f"eval-{eval_set.name}.png"), f"{eval_set.name}: {len(eval_set.queries)} queries"
        )
        if results
        else None
    )
    answers = answer_figures(docent, eval_set, collection)
    if as_json:
        print(json.dumps({**results, "answers": answers} if answers else results, indent=2))
    else:
        print(f"{eval_set.name}: {len(eval_set.queries)} queries, collection '{collection}'\n")
        if results:
            print(format_table(results))
        if answers:
            print(f"\nanswers ({answers['backend']}):")
            print(format_answer_table(answers))
        if image is not None:
            print(f"\nplot: {image}")
    return 0


def answer_figures(docent, eval_set, collection: str) -> dict:
    """Answer metrics (retrieval.answer_eval) when the set gives gold answers, else {}."""
    from retrieval.answer_eval import evaluate_answers

    if not eval_set.answers:
        return {}
    evidence = {qid: set(grades) for qid, grades in eval_set.qrels.items()}

    def ask(qid: str):
        scope = eval_set.scopes.get(qid)
        return docent.ask(eval_set.queries[qid], collection=collection, sources=[scope] if scope else None)

    figures = evaluate_answers(
        ask, eval_set.queries, eval_set.answers, evidence, kinds=eval_set.kinds, halves=eval_set.halves
    )
    return {"backend": docent.backend.description, **figures}


def format_answer_table(answers: dict) -> str:
    """The answer metrics as a table: all questions, each half of the set, each kind of answer."""
    rows = [("all", answers)]
    rows += [(f"half {name}", row) for name, row in answers.get("by_half", {}).items()]
    rows += [(name, row) for name, row in answers.get("by_kind", {}).items()]
    evidence = "first_citation_evidence" in answers
    head = "| | questions | gold fact stated |" + (" first citation on evidence |" if evidence else "")
    lines = [head + " worked figures right / stated |", "|---|---:|---:|" + ("---:|" if evidence else "") + "---:|"]
    for name, row in rows:
        cited = f" {row['first_citation_evidence']:.1%} |" if evidence else ""
        lines.append(
            f"| {name} | {row['questions']} | {row['gold_in_answer']:.1%} |{cited}"
            f" {row['worked_right']} / {row['worked_stated']} |"
        )
    return "\n".join(lines)
