"""Turning sources into chunks that keep their provenance (document, title, page, section)."""

from ingest.chunking import chunk_document
from ingest.errors import (
    CorruptPDFError,
    EncryptedPDFError,
    IngestError,
    NoTextLayerError,
    NotAPDFError,
)
from ingest.models import Chunk, Document, Page
from ingest.pdf import load_pdf

__all__ = [
    "Chunk",
    "CorruptPDFError",
    "Document",
    "EncryptedPDFError",
    "IngestError",
    "NoTextLayerError",
    "NotAPDFError",
    "Page",
    "chunk_document",
    "load_pdf",
]
