"""Real English prose on every machine: the documentation strings of Python's standard library,
one document per module, one page per documented function or class (for tests that need a few
hundred passages of text without ../shared)."""

from __future__ import annotations

import hashlib
import importlib
import inspect

from ingest.models import Document, Page

MODULES = (
    "argparse",
    "calendar",
    "collections",
    "csv",
    "datetime",
    "decimal",
    "difflib",
    "fractions",
    "functools",
    "gzip",
    "heapq",
    "json",
    "logging",
    "pathlib",
    "pickle",
    "shutil",
    "sqlite3",
    "statistics",
    "subprocess",
    "tarfile",
    "textwrap",
    "threading",
    "unittest",
    "uuid",
    "zipfile",
)
MIN_CHARACTERS = 120  # shorter docstrings ("Return self==value.") repeat across modules

QUERIES = (
    "parse command line options and arguments",
    "read and write comma separated values",
    "calendar of a month printed as text",
    "ordered dictionary that remembers insertion order",
    "decimal floating point arithmetic rounding",
    "differences between two sequences of lines",
    "rational numbers as a fraction",
    "cache the results of a function call",
    "compress a file with gzip",
    "priority queue with a heap",
    "serialize objects to JSON",
    "log messages to a file with a handler",
    "filesystem paths with object oriented methods",
    "pickle protocol for serializing objects",
    "copy a directory tree recursively",
    "execute SQL statements on a database connection",
    "mean median and standard deviation",
    "run a child process and capture its output",
    "read a tar archive member",
    "wrap a paragraph to a given width",
    "lock shared between threads",
    "test case assertions that fail",
    "universally unique identifier",
    "zip archive of files",
    "timeout",
)


def docstring_documents(modules=MODULES) -> list[Document]:
    documents = []
    for name in modules:
        module = importlib.import_module(name)
        pages = [inspect.getdoc(module) or name]
        for member_name, member in sorted(vars(module).items()):
            if member_name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
                continue
            doc = inspect.getdoc(member)
            if doc and len(doc) >= MIN_CHARACTERS:
                pages.append(f"{member_name}\n\n{doc}")
        text = "\n\f".join(pages)
        documents.append(
            Document(
                source=f"{name}.txt",
                title=f"The {name} module",
                kind="text",
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                pages=[Page(number, page) for number, page in enumerate(pages, start=1)],
                size_bytes=len(text.encode()),
            )
        )
    return documents
