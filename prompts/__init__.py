"""Prompt templates, kept as plain files beside this module.

Templates use ``$name`` placeholders (string.Template), so braces in passages are harmless.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from string import Template


@lru_cache(maxsize=None)
def load(name: str) -> str:
    """The raw text of prompts/<name>.txt."""
    try:
        return resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError(f"no prompt template named {name!r} in {__package__}/") from None


def render(name: str, **values: object) -> str:
    """Fills a template; a placeholder without a value is an error, not a silent gap."""
    return Template(load(name)).substitute({k: str(v) for k, v in values.items()}).strip()
