"""The offline ``local`` model: structured output from a small sentence encoder, with no network.

``LocalModel`` is a real ``pydantic_ai.models.Model``, so its calls pass through the same output
validation, usage accounting and audit trail as a hosted model's. It reads the latest user prompt
(the agent's rendered ``input``) and fills the output schema field by field, trying in order:

1. **Extraction.** A line ``Field: value`` or ``field = value``, a two-cell table row
   (``| Order number | 123 |``, ``order_id,123``), or a header row over a data row (markdown with a
   ``---`` separator, or three or more comma, semicolon or tab separated columns) whose key matches
   the field's name or title, ignoring case, spaces, underscores and camelCase. A JSON object input
   (the default ``input`` is the context as JSON) is read key by key, nested keys included. The
   value must fit the field: numbers are parsed, enums must name a label, ranges are checked.
   String fields whose ``format`` or name says email, URL or date take the first match in the text.
2. **Zero-shot classification** for enum fields, booleans with ``true``/``false`` examples and
   strings whose examples name their values. Each label is described by its name, its description
   (``oneOf: [{const, description}]``), each item its description lists (several phrasings of
   it: "Payments, charges and refunds" also gives "Payments", "charges" and "refunds") and the
   agent's ``examples[field][label]``; a label scores the mean similarity of its ``TOP_K``
   closest texts, and the highest wins. With generic labels (a one-line description and three
   examples, ``tests/ai/data/label_sets.yaml``) this beat the mean of all texts on the product
   tuning set (82% against 71%), at a small cost on support (85% against 87%); with the support
   example's own labels the two tie (91%). Labels
   ``negative``/``neutral``/``positive`` are a polarity scale, where embeddings see the topic
   more than the mood: there the similarities are combined with a sentiment lexicon and tone
   cues (``statewise.ai.tone``).
3. **Scoring** for numbers with examples keyed by value (``{"urgency": {"5": [...], "1": [...]}}``):
   a softmax over each value's mean similarity gives a weighted average, clamped to the schema's
   ``minimum``/``maximum`` and rounded for integers.
4. **Retrieval** for answer-like strings (named answer, reply or response, or described as coming
   from the knowledge base): the knowledge is cut into passages of at most two sentences, and the
   most similar passage is returned verbatim if its similarity reaches ``MIN_RELEVANCE``. A field
   named source or sources gets that passage's document title.
5. **Confidence** for a field named confidence, certainty, score or similarity (with no examples):
   the lowest confidence among the decisions above (the winning label's softmax probability, the
   score's largest weight, the passage's similarity), given as a percentage if ``maximum`` > 1.

Reading the schema and the input's key-value pairs lives in ``statewise.ai.local_fields``.

**Limits.** It writes no prose: a summary, a rewrite or an email it cannot extract or retrieve is
left unfilled. Inputs are read as text only, nested objects and arrays (other than ``sources``)
are not filled, one record per table, and it never calls the agent's tools. The system
instructions are not embedded: they are the same for every item, so they would shift every
similarity alike while blurring the input. The encoder reads English best; other languages and
domain jargon need examples. Label quality is the whole game: give each label a description and a
few examples.

**What it does not know, it says.** An optional field it cannot fill is left out; a required one
makes the request fail with ``UnexpectedModelBehavior`` naming the field and what would fill it,
because ``StructuredDict`` outputs are not checked against ``required`` and an omission would pass
unnoticed. Every response lists how each field was filled, and what was not, in
``provider_details``. A rejected output is not retried: the model is deterministic (the same input
always gives the same output), so it fails with the validation feedback instead.

Usage: ``input_tokens`` is the prompt's length in the encoder's word pieces, ``output_tokens`` the
returned JSON's; examples and knowledge are embedded once per ``LocalModel`` and not charged again,
like a provider's prompt cache. Encoding runs in a worker thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic_ai import RunContext
from pydantic_ai.exceptions import UnexpectedModelBehavior, UserError
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    RetryFeedbackPart,
    TextContent,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import (
    CompletedStreamedResponse,
    Model,
    ModelRequestParameters,
    StreamedResponse,
)
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import RequestUsage

from statewise.ai import tone
from statewise.ai.embeddings import Encoder, Vectors, default_encoder, split_sentences
from statewise.ai.local_fields import (
    JsonSchema,
    OutputField,
    clamp,
    extract,
    humanise,
    label_key,
    number,
    output_fields,
    parse_input,
)
from statewise.definition.model import AgentSpec, KnowledgeDoc

logger = logging.getLogger(__name__)

TEMPERATURE = 0.03
"""Softmax temperature over cosine similarities: a 0.1 lead makes a label ~28 times likelier."""
TOP_K = 3
"""A label scores the mean similarity of its three closest reference texts (see ``_classify``)."""
MIN_RELEVANCE = 0.35
"""Below this similarity a passage is off-topic (unrelated text scores 0.0-0.2 with MiniLM)."""

Examples = Mapping[str, Mapping[str, Sequence[str]]]
Scores = NDArray[np.float64]


class FillMethod(StrEnum):
    """How a field's value was found; reported per field in ``provider_details``."""

    EXTRACTED = "extracted"
    CLASSIFIED = "classified"
    SCORED = "scored"
    RETRIEVED = "retrieved"
    CONFIDENCE = "confidence"


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrievable piece of a knowledge document: at most two consecutive sentences."""

    title: str
    text: str


@dataclass(frozen=True, slots=True)
class _Value:
    value: Any
    method: FillMethod
    confidence: float | None = None


@dataclass(slots=True)
class _Request:
    """What one request works from: the prompt, its prose, its key-value pairs, its embedding."""

    prompt: str
    prose: str
    pairs: dict[str, Any]
    vector: Vectors | None = None
    passage: tuple[Passage, float] | None = None
    searched: bool = False


@dataclass(slots=True)
class _Fill:
    args: dict[str, Any] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    unfilled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)


class LocalModel(Model):
    """The offline model of one agent: its examples and knowledge are what it knows."""

    def __init__(
        self,
        *,
        examples: Examples | None = None,
        knowledge: Sequence[KnowledgeDoc] = (),
        encoder: Encoder | None = None,
        settings: ModelSettings | None = None,
    ) -> None:
        """Keep what the agent declares; nothing is loaded or embedded until the first request.

        Args:
            examples: Reference texts per output field and value, as in ``AgentSpec.examples``.
            knowledge: Documents answers are retrieved from.
            encoder: The sentence encoder; default: the process-wide all-MiniLM-L6-v2.
            settings: Model settings, accepted like any model's (sampling ones mean nothing here).

        """
        profile = ModelProfile(supports_json_schema_output=True, supports_json_object_output=True)
        super().__init__(settings=settings, profile=profile)
        self._examples = {
            name: {label_key(value): tuple(texts) for value, texts in by_value.items()}
            for name, by_value in (examples or {}).items()
        }
        self._example_values = {
            name: {label_key(value): value for value in by_value}
            for name, by_value in (examples or {}).items()
        }
        self._knowledge = tuple(knowledge)
        self._chosen_encoder = encoder
        self._lock = threading.Lock()
        self._references: dict[tuple[str, tuple[str, ...]], list[Vectors]] = {}
        self._passages: tuple[list[Passage], Vectors] | None = None

    @classmethod
    def for_agent(cls, spec: AgentSpec, encoder: Encoder | None = None) -> LocalModel:
        """The local model of a declared agent."""
        return cls(examples=spec.examples, knowledge=spec.knowledge, encoder=encoder)

    @property
    def model_name(self) -> str:
        """The encoder's name (``all-MiniLM-L6-v2`` by default), without loading it."""
        return self._chosen_encoder.name if self._chosen_encoder else "all-MiniLM-L6-v2"

    @property
    def system(self) -> str:
        """The provider name recorded in usage and traces."""
        return "local"

    @property
    def encoder(self) -> Encoder:
        """The encoder in use, loading the shared default on first use."""
        return self._chosen_encoder or default_encoder()

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Fill the output from the latest prompt, off the event loop."""
        _, parameters = self.prepare_request(model_settings, model_request_parameters)
        feedback = _retry_feedback(messages)
        if feedback is not None:
            raise UnexpectedModelBehavior(
                "The local model is deterministic and cannot revise a rejected output", feedback
            )
        return await asyncio.to_thread(self._respond, _latest_prompt(messages), parameters)

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        """Stream the complete response at once, so ``run_stream`` works too."""
        response = await self.request(messages, model_settings, model_request_parameters)
        parameters = self.prepare_request(model_settings, model_request_parameters)[1]
        yield CompletedStreamedResponse(
            response, model_request_parameters=parameters, replay_events=True
        )

    def _respond(self, prompt: str, parameters: ModelRequestParameters) -> ModelResponse:
        """Build the response: a call of the output tool, or JSON or passage text."""
        part: ModelResponsePart
        if parameters.output_tools:
            tool = parameters.output_tools[0]
            fill = self._fill(tool.parameters_json_schema, prompt)
            part = ToolCallPart(tool.name, fill.args)
            output = json.dumps(fill.args, ensure_ascii=False)
            details: dict[str, Any] = {"filled": fill.methods, "unfilled": fill.unfilled}
        elif parameters.output_object is not None:
            fill = self._fill(parameters.output_object.json_schema, prompt)
            output = json.dumps(fill.args, ensure_ascii=False)
            part = TextPart(output)
            details = {"filled": fill.methods, "unfilled": fill.unfilled}
        else:
            output, method = self._answer_text(prompt)
            part = TextPart(output)
            details = {"filled": {"text": method}, "unfilled": []}
        encoder = self.encoder
        usage = RequestUsage(
            input_tokens=encoder.count_tokens(prompt), output_tokens=encoder.count_tokens(output)
        )
        return ModelResponse(
            parts=[part],
            usage=usage,
            model_name=self.model_name,
            provider_name=self.system,
            provider_details=details,
            finish_reason="stop",
        )

    def _fill(self, schema: JsonSchema, prompt: str) -> _Fill:
        """Fill every field the input supports; fail on a required one it does not."""
        prose, pairs = parse_input(prompt)
        request = _Request(prompt=prompt, prose=prose, pairs=pairs)
        fields = output_fields(schema)
        fill = _Fill()
        # Sources follow the answer they cite; confidence follows every decision it summarises.
        later = [f for f in fields if f.is_source]
        later += [f for f in fields if f.is_confidence(self._examples)]
        for output_field in [f for f in fields if f not in later] + later:
            value = self._value(output_field, request, fill)
            if value is None:
                (fill.missing if output_field.required else fill.unfilled).append(output_field.name)
                continue
            fill.args[output_field.name] = value.value
            fill.methods[output_field.name] = value.method.value
            if value.confidence is not None and value.method is not FillMethod.CONFIDENCE:
                fill.confidences.append(value.confidence)
        if fill.unfilled:
            logger.info("local model left optional fields unfilled: %s", ", ".join(fill.unfilled))
        if fill.missing:
            raise UnexpectedModelBehavior(_missing_message(fill.missing), json.dumps(fill.args))
        return fill

    def _value(self, output_field: OutputField, request: _Request, fill: _Fill) -> _Value | None:
        """The first method that can fill this field, in the order the module describes."""
        extracted = extract(output_field, request.pairs, request.prompt)
        if extracted is not None:
            return _Value(extracted, FillMethod.EXTRACTED)
        if output_field.is_source:
            return self._source(output_field, request)
        if output_field.is_confidence(self._examples):
            return _confidence(output_field, fill.confidences)
        if not request.prose.strip():
            return None
        labelled = self._classify(output_field, request)
        if labelled is not None:
            return labelled
        if output_field.type in ("integer", "number"):
            return self._score(output_field, request)
        if output_field.is_answer:
            found = self._retrieve(request)
            return _Value(found[0].text, FillMethod.RETRIEVED, found[1]) if found else None
        return None

    def _classify(self, output_field: OutputField, request: _Request) -> _Value | None:
        """Zero-shot: the label whose reference texts are on average closest to the input."""
        found = self._similarities(output_field, request)
        if found is None:
            return None
        labels, scores = found
        keys = [key for key, _ in labels]
        if tone.is_polarity(keys):
            shares = tone.probabilities(dict(zip(keys, scores, strict=True)), request.prose)
            weights = np.array([shares[key] for key in keys])
        else:
            weights = _softmax(scores)
        best = int(np.argmax(weights))
        return _Value(labels[best][1], FillMethod.CLASSIFIED, round(float(weights[best]), 3))

    def _similarities(
        self, output_field: OutputField, request: _Request
    ) -> tuple[list[tuple[str, Any]], Scores] | None:
        """Each label's mean similarity to the input, if the field is a choice of labels."""
        labels = _labels(output_field, self._example_values.get(output_field.name, {}))
        if len(labels) < 2:
            return None
        texts = [self._label_texts(output_field, key) for key, _ in labels]
        if not all(texts):
            return None
        references = self._embedded(output_field.name, texts)
        vector = self._vector(request)
        return labels, np.array([_closest_mean(matrix @ vector) for matrix in references])

    def label_similarities(
        self, schema: JsonSchema, field_name: str, text: str
    ) -> dict[str, float]:
        """What the embedding alone sees: each label's mean similarity to ``text``.

        For tuning and debugging (``bench/tune_tone.py``); ``{}`` if the field is no choice.
        """
        (output_field,) = [f for f in output_fields(schema) if f.name == field_name]
        prose, pairs = parse_input(text)
        found = self._similarities(output_field, _Request(prompt=text, prose=prose, pairs=pairs))
        if found is None:
            return {}
        labels, scores = found
        return {key: float(score) for (key, _), score in zip(labels, scores, strict=True)}

    def _score(self, output_field: OutputField, request: _Request) -> _Value | None:
        """Similarity-weighted average of the example values, clamped to the schema's range."""
        by_value = self._examples.get(output_field.name, {})
        values = [number(key) for key in by_value]
        if len(by_value) < 2 or any(v is None for v in values):
            return None
        references = self._embedded(output_field.name, [list(t) for t in by_value.values()])
        vector = self._vector(request)
        weights = _softmax(np.array([float(np.mean(m @ vector)) for m in references]))
        estimate = float(weights @ np.array(values, dtype=np.float64))
        estimate = clamp(estimate, output_field.schema)
        value: float | int = (
            round(estimate) if output_field.type == "integer" else round(estimate, 3)
        )
        return _Value(value, FillMethod.SCORED, round(float(np.max(weights)), 3))

    def _source(self, output_field: OutputField, request: _Request) -> _Value | None:
        """The title of the document the answer came from."""
        found = self._retrieve(request) if request.prose.strip() else None
        if found is None:
            return None
        title = found[0].title
        value: Any = [title] if output_field.type == "array" else title
        return _Value(value, FillMethod.RETRIEVED, found[1])

    def _retrieve(self, request: _Request) -> tuple[Passage, float] | None:
        """The knowledge passage most similar to the input, if any is relevant at all."""
        if not request.searched:
            request.searched = True
            index = self._passage_index()
            if index is not None:
                passages, matrix = index
                similarities = matrix @ self._vector(request)
                best = int(np.argmax(similarities))
                similarity = float(similarities[best])
                if similarity >= MIN_RELEVANCE:
                    request.passage = (passages[best], round(min(similarity, 1.0), 3))
        return request.passage

    def _answer_text(self, prompt: str) -> tuple[str, str]:
        """Free-text output: the best passage, else the best label of the first examples."""
        prose, pairs = parse_input(prompt)
        request = _Request(prompt=prompt, prose=prose, pairs=pairs)
        if self._knowledge and prose.strip():
            found = self._retrieve(request)
            if found is None:
                raise UnexpectedModelBehavior("No knowledge passage is relevant to the input")
            return found[0].text, FillMethod.RETRIEVED.value
        for name in self._examples:
            value = self._classify(OutputField(name=name, schema={}, required=True), request)
            if value is not None:
                return str(value.value), FillMethod.CLASSIFIED.value
        raise UserError(
            "The local model writes no free text: give the agent an output schema, "
            "knowledge documents or examples"
        )

    def _label_texts(self, output_field: OutputField, key: str) -> list[str]:
        """A label's reference texts: its examples, and unless boolean, its name and note."""
        texts = list(self._examples.get(output_field.name, {}).get(key, ()))
        if output_field.type != "boolean":
            name = humanise(key)
            texts.append(name)
            if note := output_field.notes.get(key):
                texts.append(f"{name}: {note}")
                texts.extend(p for p in _phrases(note) if p.lower() not in map(str.lower, texts))
        return texts

    def _embedded(self, name: str, groups: list[list[str]]) -> list[Vectors]:
        """Embed groups of reference texts in one batch, once per model and field."""
        cache_key = (name, tuple("\x1f".join(group) for group in groups))
        with self._lock:
            cached = self._references.get(cache_key)
            if cached is None:
                matrix = self.encoder.encode([text for group in groups for text in group])
                bounds = np.cumsum([len(group) for group in groups])[:-1]
                cached = self._references[cache_key] = np.split(matrix, bounds)
        return cached

    def _passage_index(self) -> tuple[list[Passage], Vectors] | None:
        """Cut the knowledge into passages and embed them (title first), once per model."""
        if not self._knowledge:
            return None
        with self._lock:
            if self._passages is None:
                passages = [p for doc in self._knowledge for p in _passages(doc)]
                matrix = self.encoder.encode([f"{p.title}: {p.text}" for p in passages])
                self._passages = (passages, matrix)
        return self._passages

    def _vector(self, request: _Request) -> Vectors:
        """The input's embedding, computed on first need; alone, so batching cannot change it."""
        if request.vector is None:
            request.vector = self.encoder.encode([request.prose])[0]
        return request.vector


def _labels(output_field: OutputField, examples: Mapping[str, str]) -> list[tuple[str, Any]]:
    """(key, value) per label: the enum, true/false, or the examples' own values.

    ``examples`` maps each example key (see ``label_key``) to the value as the agent wrote it;
    string fields take their labels from it, unless its keys are numbers (scores) or the field
    is an answer (retrieved, not chosen).
    """
    if output_field.labels:
        return [(label_key(label), label) for label in output_field.labels]
    if output_field.type == "boolean":
        return [("true", True), ("false", False)] if examples else []
    textual = output_field.type in ("string", "unknown") and not output_field.is_answer
    if textual and examples and not all(number(key) is not None for key in examples):
        return list(examples.items())
    return []


_PHRASE_BREAK = re.compile(r"[,;:()]|\s(?:and|or|such as|e\.g\.|like|including)\s", re.IGNORECASE)


def _phrases(note: str) -> list[str]:
    """The items a description lists, each a phrasing of the label on its own.

    "Payments, charges, invoices and refunds" gives "Payments", "charges", "invoices" and
    "refunds": an input about one of them is close to that item, while the whole
    description averages them all into something close to none.
    """
    return [p.strip() for p in _PHRASE_BREAK.split(note) if len(p.strip()) > 2]


def _closest_mean(similarities: NDArray[np.floating[Any]]) -> float:
    """The mean of the ``TOP_K`` highest similarities (all of them if there are fewer)."""
    top = np.sort(similarities)[-TOP_K:]
    return float(np.mean(top))


def _passages(doc: KnowledgeDoc) -> list[Passage]:
    """Windows of two consecutive sentences within each paragraph of a document."""
    passages: list[Passage] = []
    for paragraph in re.split(r"\n\s*\n", doc.text):
        sentences = split_sentences(paragraph)
        if len(sentences) <= 2:
            passages.extend([Passage(doc.title, " ".join(sentences))] if sentences else [])
            continue
        passages.extend(
            Passage(doc.title, " ".join(sentences[i : i + 2])) for i in range(len(sentences) - 1)
        )
    return passages


def _latest_prompt(messages: Sequence[ModelMessage]) -> str:
    """The text of the latest user prompt: the agent's rendered input."""
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            continue
        for part in reversed(message.parts):
            if isinstance(part, UserPromptPart):
                if isinstance(part.content, str):
                    return part.content
                return "\n".join(
                    c if isinstance(c, str) else c.content
                    for c in part.content
                    if isinstance(c, str | TextContent)
                )
    return ""


def _retry_feedback(messages: Sequence[ModelMessage]) -> str | None:
    """The validation feedback, when the last request asks to revise the previous output."""
    if not messages or not isinstance(messages[-1], ModelRequest):
        return None
    for part in messages[-1].parts:
        if isinstance(part, RetryFeedbackPart):
            return json.dumps(part.content, default=str)
        if isinstance(part, ToolReturnPart) and part.outcome == "retried":
            return part.model_response_str()
    return None


def _missing_message(missing: list[str]) -> str:
    """Say which required fields the local model cannot fill, and what would let it."""
    return (
        f"The local model cannot fill required output field(s) {', '.join(missing)}: it only "
        "extracts 'field: value' text, classifies enums, scores numbers with examples and "
        "retrieves answers from knowledge; make them optional, add examples or knowledge, "
        "or use a generative model"
    )


def _confidence(output_field: OutputField, confidences: list[float]) -> _Value | None:
    """The weakest decision's confidence, as a percentage when the schema counts to 100."""
    if not confidences:
        return None
    value = min(confidences)
    if float(output_field.schema.get("maximum", 1)) > 1:
        value *= 100
    value = clamp(value, output_field.schema)
    result = round(value) if output_field.type == "integer" else round(value, 3)
    return _Value(result, FillMethod.CONFIDENCE, value)


def _softmax(scores: Scores) -> Scores:
    exp: Scores = np.exp((scores - np.max(scores)) / TEMPERATURE)
    weights: Scores = exp / exp.sum()
    return weights
