"""A definition's content hash, and what changed between two sources of one version.

A stored (workflow, version) is immutable, so the store keeps a hash of each definition's
content. The hash is taken over the parsed YAML document, not the text, so re-indenting a file
or editing a comment is not a change, while any change to what runs is.
"""

from __future__ import annotations

import difflib
import hashlib
import json

import yaml


def content_hash(source: str) -> str:
    """SHA-256 of the YAML document's canonical JSON form (the text's, if it does not parse)."""
    try:
        document = _keys_as_text(yaml.safe_load(source))
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    except yaml.YAMLError:
        canonical = source
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _keys_as_text(node: object) -> object:
    """Mapping keys as text, so keys YAML reads as other types (``on:`` is True) can be sorted."""
    if isinstance(node, dict):
        return {str(key): _keys_as_text(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_keys_as_text(value) for value in node]
    return node


def describe_change(stored: str, new: str, limit: int = 12) -> str:
    """The changed lines between two sources, as a short unified diff."""
    diff = difflib.unified_diff(
        stored.splitlines(), new.splitlines(), "stored", "new", lineterm="", n=0
    )
    lines = [line for line in diff if not line.startswith(("---", "+++"))]
    shown = lines[:limit]
    if len(lines) > limit:
        shown.append(f"... and {len(lines) - limit} more changed line(s)")
    return "\n".join(shown) or "(only formatting or key order differs)"
