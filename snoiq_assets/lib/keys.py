"""Checked names: nothing builds an object key or a path from unchecked text."""

from __future__ import annotations

import re

# Station ids, locations, model types: what DESIGN.md allows in an identifier.
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.-]+")
# One segment of an object key: identifiers plus '=' (hive-style "model_type=xgboost").
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_.=+-]+")
# Longest segment: leaves room under the usual 255-byte file-name limit for the suffixes added
# to it (".reason.json", an atomic write's ".<name>.<random>.tmp").
MAX_SEGMENT = 200


class UnsafeNameError(ValueError):
    """A name or key that could escape its folder or is not a plain identifier."""


def safe_identifier(text: str, what: str = "identifier") -> str:
    """Return ``text`` if it is a plain identifier (``[A-Za-z0-9_.-]+``, not '.' or '..')."""
    if not isinstance(text, str) or not _IDENTIFIER.fullmatch(text) or text in (".", "..") or len(text) > 200:
        raise UnsafeNameError(f"{what} {text!r} is not a safe identifier (allowed: letters, digits, '_', '.', '-')")
    return text


def check_key(key: str) -> str:
    """Return ``key`` if every '/'-separated segment is safe; refuse '..', empty and absolute keys."""
    if not isinstance(key, str) or not key or key.startswith("/") or len(key) > 900:
        raise UnsafeNameError(f"object key {key!r} is empty, absolute or too long")
    for segment in key.split("/"):
        if segment in ("", ".", "..") or not _KEY_SEGMENT.fullmatch(segment):
            raise UnsafeNameError(f"object key {key!r} has an unsafe segment {segment!r}")
        if len(segment) > MAX_SEGMENT:
            raise UnsafeNameError(f"object key {key[:80]!r}... has a segment of {len(segment)} characters "
                                  f"(at most {MAX_SEGMENT})")
    return key


def join_key(*parts: str) -> str:
    """Join key parts with '/', checking the result."""
    return check_key("/".join(p.strip("/") for p in parts if p))


def safe_stand_in(key: str) -> str:
    """A safe one-segment name standing for an unsafe key (hash + its readable characters):
    distinct unsafe keys get distinct names, and nothing of the original is interpreted."""
    import hashlib

    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key.rsplit("/", 1)[-1]).strip("._")[:80] or "file"
    return f"{digest}-{readable}"
