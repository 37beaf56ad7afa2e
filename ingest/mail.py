"""E-mail messages (.eml): the message, then each attachment Docent reads, as pages.

Page 1 is the message: who wrote it to whom and when, its subject and its text (the plain part,
or the HTML part read as a web page is). Each attachment follows with its own pages, read by the
loader of its type (a PDF, a Word file, a scan, another e-mail), and named in the page's section:
"attachment budget.pdf, page 3". An attachment Docent does not read, or cannot, is named in the
document's warnings; the message still goes in.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from email.message import EmailMessage
from typing import Callable

from ingest.errors import IngestError
from ingest.models import Document, Page, title_from_name
from ingest.text import clean_page_text
from ingest.web.html import load_html

# Reads one attachment: its Document, or the reason it could not (ingest.sources passes it, so
# that this module needs no registry of file types).
ReadAttachment = Callable[[str, bytes], "Document | str"]

_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")
_MESSAGE_FIELDS = (b"subject", b"date", b"message-id", b"to")
SHOWN_HEADERS = ("From", "To", "Cc", "Date", "Subject")


def looks_like_email(head: bytes) -> bool:
    """A header block (Name: value lines up to a blank line) with From: and a message field."""
    block = head.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    lines = block.split(b"\n")
    if not lines or not _HEADER_LINE.match(lines[0]):
        return False
    names = {line.split(b":", 1)[0].lower() for line in lines if _HEADER_LINE.match(line)}
    return b"from" in names and any(field in names for field in _MESSAGE_FIELDS)


def load_email(name: str, data: bytes, read_attachment: ReadAttachment) -> Document:
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(message, EmailMessage) or not message.keys():
        raise IngestError(name, "the e-mail has no headers")
    subject = str(message.get("Subject", "") or "").strip()
    header = "\n".join(f"{field}: {message[field]}" for field in SHOWN_HEADERS if message.get(field))
    body = _body_text(name, message)
    pages = [Page(1, f"{header}\n\n{body}".strip(), "message")]
    warnings = []
    for part in message.iter_attachments():
        filename = part.get_filename() or f"attachment {len(pages)}"
        content = _attachment_bytes(part)
        if not content:
            warnings.append(f"attachment {filename} is empty")
            continue
        found = read_attachment(filename, content)
        if isinstance(found, str):
            warnings.append(f"attachment {filename} was not added: {found}")
            continue
        for page in found.pages:
            # Only a PDF's pages are pages; other files' pages are their sections, slides or rows.
            where = f"attachment {filename}" + (f", page {page.number}" if found.kind == "pdf" else "")
            section = f"{where} › {page.section}" if page.section else where
            pages.append(Page(len(pages) + 1, page.text, section))
    if not body.strip() and len(pages) == 1:
        raise IngestError(name, "the e-mail holds no text and no attachment Docent reads")
    return Document(
        source=name,
        title=subject or title_from_name(name),
        kind="email",
        content_hash=hashlib.sha256(data).hexdigest(),
        pages=pages,
        size_bytes=len(data),
        warnings=warnings,
    )


def _body_text(name: str, message: EmailMessage) -> str:
    """The message's text, cleaned: its plain part, or its HTML part read as a web page is."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    if part.get_content_subtype() == "html":
        return "\n\n".join(page.text for page in load_html(part.get_content(), name).pages)
    return clean_page_text(part.get_content())


def _attachment_bytes(part: EmailMessage) -> bytes:
    if part.get_content_type() == "message/rfc822":  # a forwarded message, read as an e-mail
        inner = part.get_payload()
        return (inner[0] if isinstance(inner, list) else inner).as_bytes()
    return part.get_payload(decode=True) or b""
