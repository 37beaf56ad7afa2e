"""Typed ingest errors. Each message names the source and says what a user can do about it."""


class IngestError(Exception):
    """A source could not be ingested; the message says why. Other sources go on."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self):  # so the error crosses process boundaries intact
        return (self.__class__, (self.source, self.reason))


class NotAPDFError(IngestError):
    """The file is named or sent as a PDF but its bytes are something else."""


class CorruptPDFError(IngestError):
    """The file starts like a PDF but its structure cannot be read."""


class EncryptedPDFError(IngestError):
    """The PDF needs a password to open."""


class NoTextLayerError(IngestError):
    """The PDF has no extractable text: a scan, an image-only export, or text drawn as curves."""
