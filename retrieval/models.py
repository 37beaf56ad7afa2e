"""The data that flows out of retrieval: hits, answers that cite them, and stored documents."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


class Results(list):
    """A ranked list (best first) that may lack what some shards of a sharded collection hold:
    missing_shards names the shards that did not answer in time; empty when the list is whole
    (always, for a collection on one machine)."""

    def __init__(self, items=(), missing_shards=()):
        super().__init__(items)
        self.missing_shards = tuple(sorted(set(missing_shards)))


@dataclass
class Hit:
    """One retrieved passage with its provenance (the contract in DESIGN.md)."""

    source: str
    title: str
    page: int | None
    chunk_id: int
    score: float  # in the search mode's own scale: cosine, BM25, or fused RRF
    text: str
    section: str | None = None
    similarity: float | None = None  # cosine between the question and the passage
    ref: int | None = None  # the citation number [n] when the hit is cited in an answer
    highlights: list[tuple[int, int]] = field(default_factory=list)  # spans of `text` the answer cites

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Hit":
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["highlights"] = [tuple(span) for span in data.get("highlights") or ()]
        return cls(**fields)


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Hit]  # cited passages, citations[i].ref == i + 1
    answered: bool  # False when the documents do not answer the question
    closest: list[Hit] = field(default_factory=list)  # shown when nothing answered
    error: str | None = None  # why the backend failed, when it did
    rewritten: str | None = None  # the standalone question searched for, when it differs
    # Shards of a sharded collection that did not answer in time: the answer is from the rest.
    missing_shards: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "rewritten": self.rewritten,
            "answer": self.text,
            "answered": self.answered,
            "error": self.error,
            "citations": [c.to_dict() for c in self.citations],
            "closest": [c.to_dict() for c in self.closest],
            "missing_shards": list(self.missing_shards),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Answer":
        """The answer to_dict wrote (a saved chat's turn)."""
        return cls(
            question=data["question"],
            text=data["answer"],
            citations=[Hit.from_dict(h) for h in data.get("citations") or ()],
            answered=bool(data["answered"]),
            closest=[Hit.from_dict(h) for h in data.get("closest") or ()],
            error=data.get("error"),
            rewritten=data.get("rewritten"),
            missing_shards=tuple(data.get("missing_shards") or ()),
        )


@dataclass
class DocumentInfo:
    id: int
    source: str
    title: str
    kind: str
    pages: int
    chunks: int
    size_bytes: int
    added_at: str
    content_hash: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)
