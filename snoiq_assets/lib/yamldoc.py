"""User-written YAML documents (model specs, sweeps): parsed safely, and a syntax error or a
document that is not a mapping reported with the file and the line."""

from __future__ import annotations

from typing import Any

import yaml


def load_mapping(text: str | bytes, where: str, what: str, error: type[Exception]) -> dict[str, Any]:
    """``text`` as a YAML mapping; else ``error`` naming ``where`` (the file), the line of a syntax
    error, or ``what`` a document of this kind is (e.g. "a sweep is a mapping with keys [...]")."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise error(f"{where}: {what}; got {type(doc).__name__}")
    return doc
