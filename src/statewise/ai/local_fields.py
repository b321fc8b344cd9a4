"""What the local model reads: the output schema's fields, and values written in the input.

Split from ``statewise.ai.local`` because none of it needs the encoder: resolving a JSON Schema
into fields, and finding ``Order number: 123``, table rows and JSON keys in a prompt, are plain
text work that is tested and reasoned about on its own. See ``statewise.ai.local`` for the order
in which the model uses these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JsonSchema = Mapping[str, Any]

_ANSWER_WORDS = frozenset({"answer", "reply", "response"})
_SOURCE_WORDS = frozenset({"source", "sources"})
_CONFIDENCE_WORDS = frozenset({"confidence", "certainty"})
_PATTERNS = {
    "email": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "uri": re.compile(r"https?://[^\s<>\"')\]]*[^\s<>\"')\].,;:!?]"),
    "date": re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),
}
_LINE_PAIR = re.compile(r"^\s*(?:[-*•]\s*)?([^\W\d][\w .#/()-]{0,48}?)\s*[:=]\s*(\S.*?)\s*$")
_SEPARATOR_ROW = re.compile(r"^[\s|:+-]*-[\s|:+-]*$")
_NUMBER = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[-+]?\d+(?:\.\d+)?")
_BOOLEANS = {"true": True, "yes": True, "y": True, "1": True}
_BOOLEANS.update({"false": False, "no": False, "n": False, "0": False})


@dataclass(frozen=True, slots=True)
class OutputField:
    """One property of the output schema, with ``$ref`` and ``null`` branches resolved.

    ``labels`` are the allowed values (``enum``, or ``oneOf``/``anyOf`` of ``const``s) and
    ``notes`` their descriptions, keyed by ``label_key``.
    """

    name: str
    schema: JsonSchema
    required: bool
    labels: tuple[Any, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def type(self) -> str:
        """The JSON type, inferred from the labels when the schema leaves it out."""
        declared = self.schema.get("type")
        if isinstance(declared, list):
            declared = next((t for t in declared if t != "null"), None)
        if isinstance(declared, str):
            return declared
        if self.labels and all(isinstance(label, str) for label in self.labels):
            return "string"
        return "unknown"

    @property
    def keys(self) -> frozenset[str]:
        """The spellings an input key may use for this field, normalised."""
        return frozenset(norm(k) for k in (self.name, self.schema.get("title", "")) if k)

    @property
    def words(self) -> frozenset[str]:
        """The words of the field's name."""
        return frozenset(norm(self.name).split())

    @property
    def is_answer(self) -> bool:
        """A free-text string named like an answer or described as coming from the knowledge."""
        description = str(self.schema.get("description", "")).lower()
        named = bool(self.words & _ANSWER_WORDS) or "knowledge" in description
        return named and self.type == "string" and not self.labels

    @property
    def is_source(self) -> bool:
        """A string or list that names the document an answer came from."""
        kind = self.type in ("string", "array")
        return bool(self.words & _SOURCE_WORDS) and kind and not self.labels

    def is_confidence(self, examples: Mapping[str, Any]) -> bool:
        """A number named like a confidence, with no examples to score it another way."""
        if self.type not in ("number", "integer") or self.name in examples:
            return False
        return bool(self.words & _CONFIDENCE_WORDS) or self.words in ({"score"}, {"similarity"})


def output_fields(schema: JsonSchema) -> list[OutputField]:
    """The properties of an object schema, each resolved to one concrete branch."""
    required = set(schema.get("required", ()))
    fields: list[OutputField] = []
    for name, node in schema.get("properties", {}).items():
        resolved = _resolve(node, schema)
        labels, notes = _enum(resolved, schema)
        fields.append(OutputField(name, resolved, name in required, labels, notes))
    return fields


def _resolve(node: JsonSchema, root: JsonSchema) -> JsonSchema:
    """Follow local ``$ref``s and drop the ``null`` branch of an optional field."""
    for _ in range(16):  # a bound, in case of a reference cycle
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for step in ref[2:].split("/"):
                target = target.get(step, {})
            node = {**{k: v for k, v in node.items() if k != "$ref"}, **target}
            continue
        branches = node.get("anyOf") or node.get("oneOf") or ()
        concrete = [b for b in branches if b.get("type") != "null"]
        if len(concrete) != 1:
            return node
        node = {**{k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}, **concrete[0]}
    return node


def _enum(node: JsonSchema, root: JsonSchema) -> tuple[tuple[Any, ...], dict[str, str]]:
    """Labels and their descriptions, from ``enum`` or from ``oneOf``/``anyOf`` of ``const``s."""
    if "enum" in node:
        return tuple(node["enum"]), {}
    branches = [_resolve(b, root) for b in node.get("oneOf") or node.get("anyOf") or ()]
    if branches and all("const" in b for b in branches):
        notes = {label_key(b["const"]): b["description"] for b in branches if b.get("description")}
        return tuple(b["const"] for b in branches), notes
    return (), {}


def parse_input(prompt: str) -> tuple[str, dict[str, Any]]:
    """The prose to embed, and the key-value pairs written in the prompt, keyed by ``norm``.

    A JSON object is read key by key (nested keys too; the first occurrence of a key wins) and
    its strings are the prose. Other text is the prose itself; its pairs come from ``key: value``
    lines, which win over table cells.
    """
    try:
        data = json.loads(prompt)
    except ValueError:
        data = None
    if isinstance(data, dict):
        pairs: dict[str, Any] = {}
        strings: list[str] = []
        _flatten(data, pairs, strings)
        return "\n".join(strings), pairs
    return prompt, {**_table_pairs(prompt), **_line_pairs(prompt)}


def extract(output_field: OutputField, pairs: Mapping[str, Any], text: str) -> Any | None:
    """A value for the field written under its name, or matching its format; None if none fits."""
    for key in output_field.keys:
        if key in pairs:
            value = _coerce(output_field, pairs[key])
            if value is not None:
                return value
    kind = _pattern_kind(output_field)
    if kind is not None and (match := _PATTERNS[kind].search(text)):
        return match.group(0)
    return None


def _coerce(output_field: OutputField, raw: Any) -> Any | None:
    """``raw`` as a valid value of the field, or None when it does not fit: never a guess."""
    if output_field.labels:
        return next((lb for lb in output_field.labels if norm(str(lb)) == norm(str(raw))), None)
    kind = output_field.type
    if kind == "boolean":
        return raw if isinstance(raw, bool) else _BOOLEANS.get(str(raw).strip().lower())
    if kind in ("integer", "number"):
        value = number(raw)
        if value is None or clamp(value, output_field.schema) != value:
            return None
        if kind == "integer":
            return int(value) if value.is_integer() else None
        return value
    if kind == "string" and not isinstance(raw, dict | list):
        text = str(raw).strip()
        limit = output_field.schema.get("maxLength")
        return text if text and (limit is None or len(text) <= limit) else None
    return None


def _flatten(data: Any, pairs: dict[str, Any], strings: list[str]) -> None:
    """Collect every scalar under its (first) key and every string as prose."""
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(value, dict | list):
                pairs.setdefault(norm(str(key)), value)
            _flatten(value, pairs, strings)
    elif isinstance(data, list):
        for item in data:
            _flatten(item, pairs, strings)
    elif isinstance(data, str):
        strings.append(data)


def _line_pairs(text: str) -> dict[str, str]:
    """``Key: value`` and ``key = value`` lines; the first line with a key wins."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        if match := _LINE_PAIR.match(line):
            pairs.setdefault(norm(match.group(1)), match.group(2))
    return pairs


def _table_pairs(text: str) -> dict[str, str]:
    """Header rows over their first data row, and two-cell rows as key and value.

    A row is a header when a ``---`` separator follows it, or when it has three or more comma,
    semicolon or tab separated cells: a two-column CSV cannot be told from key-value rows.
    """
    lines = text.splitlines()
    rows = [_cells(line) for line in lines]
    pairs: dict[str, str] = {}
    for index, row in enumerate(rows):
        if not row:
            continue
        following = lines[index + 1 : index + 2]
        separated = bool(following) and bool(_SEPARATOR_ROW.match(following[0]))
        if separated or (len(row) >= 3 and "|" not in lines[index]):
            data = next((r for r in rows[index + 1 :] if r and len(r) == len(row)), None)
            for header, value in zip(row, data or (), strict=False):
                pairs.setdefault(norm(header), value)
        elif len(row) == 2 and row[1]:
            pairs.setdefault(norm(row[0]), row[1])
    return pairs


def _cells(line: str) -> list[str] | None:
    """A line's cells, split on pipes, tabs, semicolons or commas; None for other lines."""
    if _SEPARATOR_ROW.match(line):
        return None
    stripped = line.strip()
    for delimiter in ("|", "\t", ";", ","):
        if delimiter in stripped:
            if delimiter == "|":
                stripped = stripped.strip("|")
            return [cell.strip() for cell in stripped.split(delimiter)]
    return None


def _pattern_kind(output_field: OutputField) -> str | None:
    """Which pattern a string field's ``format`` or name asks for, if any."""
    if output_field.type != "string" or output_field.labels:
        return None
    fmt = output_field.schema.get("format")
    words = output_field.words
    if fmt in ("email", "idn-email") or "email" in words:
        return "email"
    if fmt in ("uri", "url", "iri") or words & {"url", "link", "website"}:
        return "uri"
    if fmt == "date" or "date" in words:
        return "date"
    return None


def label_key(value: Any) -> str:
    """How a label or example value is looked up: ``True`` and ``"True"`` are both ``true``."""
    return str(value).strip().lower()


def humanise(key: str) -> str:
    """A label as words for the encoder: ``late_delivery`` reads as ``late delivery``."""
    return re.sub(r"[_-]+", " ", key).strip()


def norm(key: str) -> str:
    """``Order_Number``, ``order number`` and ``orderNumber`` all become ``order number``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)
    return " ".join(re.findall(r"[a-z0-9]+", spaced.lower()))


def number(raw: Any) -> float | None:
    """The first number in ``raw`` (``"$1,250.50"`` is 1250.5); booleans are not numbers."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    match = _NUMBER.search(str(raw))
    return float(match.group(0).replace(",", "")) if match else None


def clamp(value: float, schema: JsonSchema) -> float:
    """``value`` within the schema's ``minimum`` and ``maximum``."""
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None:
        value = max(value, float(low))
    if high is not None:
        value = min(value, float(high))
    return value
