"""Commands of product_onboarding.yaml: extract, validate, enrich, review, translate, publish.

Plain, deterministic Python standing in for agents: each command reads the supplier document and
what earlier stages stored from ``ctx.context`` and returns a JSON object, which the workflow
stores under the state's name. Run with ``statewise run examples/product_onboarding.yaml
--commands examples/product_onboarding.py``.

``translate_content`` raises a ``PermanentError`` for a language no translation model covers
(retrying cannot help), and a ``TransientError`` on the first attempt for about a quarter of
the product/language pairs, decided by a hash so every run is the same, to show retries in the
audit trail.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from statewise.errors import PermanentError, TransientError
from statewise.worker.registry import CommandContext, CommandRegistry

JSON = Any

registry = CommandRegistry()
command = registry.command


def stable_fraction(text: str) -> float:
    """A number in [0, 1) drawn from ``text``: the same on every run and every machine."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _words(text: str) -> int:
    return len(text.split())


CATEGORIES: dict[str, dict[str, Any]] = {
    "headphones": {
        "section": "Audio",
        "hints": ("headphone", "earbud", "headset"),
        "required": ("connectivity", "battery", "weight", "color"),
        "tags": ("audio", "wireless", "music", "travel", "noise cancelling"),
        "usage": "Pair them once and they reconnect on their own; the case charges them on the go.",
        "care": "Wipe the ear cushions with a dry cloth and keep the case closed when travelling.",
    },
    "kettle": {
        "section": "Kitchen",
        "hints": ("kettle",),
        "required": ("capacity", "power", "material", "color"),
        "tags": ("kitchen", "tea", "coffee", "appliance", "home"),
        "usage": "Fill to the marked level, press the switch and it turns itself off at the boil.",
        "care": "Descale once a month with citric acid and rinse twice before the next use.",
    },
    "jacket": {
        "section": "Outdoor apparel",
        "hints": ("jacket", "parka", "shell"),
        "required": ("material", "sizes", "waterproof_rating", "color"),
        "tags": ("outdoor", "rain", "hiking", "clothing", "layering"),
        "usage": "Wear it over a fleece in winter or on its own on wet spring days.",
        "care": "Wash at 30 degrees without softener and tumble dry low to refresh the coating.",
    },
    "backpack": {
        "section": "Bags",
        "hints": ("backpack", "rucksack", "daypack"),
        "required": ("capacity", "material", "weight", "color"),
        "tags": ("bags", "commuting", "travel", "laptop", "outdoor"),
        "usage": "The padded sleeve takes a 16-inch laptop; the hip belt tucks away when unused.",
        "care": "Spot clean with mild soap and let it air dry away from direct heat.",
    },
    "desk_lamp": {
        "section": "Lighting",
        "hints": ("lamp", "light"),
        "required": ("power", "color_temperature", "material", "color"),
        "tags": ("lighting", "home office", "led", "desk", "reading"),
        "usage": "Touch the base to switch on; hold it to dim and cycle the colour temperature.",
        "care": "Dust the shade with a soft brush; the LED needs no replacement.",
    },
}
REQUIRED_FIELDS = ("sku", "name", "brand", "price")
MIN_IMAGE_SIDE = 1000
TRANSLATION_LANGUAGES = ("de", "fr", "es", "it", "nl", "pl", "sv", "ja")
# Category terms per language, so translations use the catalogue's established terminology.
GLOSSARY = {
    "de": {
        "headphones": "Kopfhörer",
        "kettle": "Wasserkocher",
        "jacket": "Jacke",
        "backpack": "Rucksack",
        "desk_lamp": "Schreibtischlampe",
    },
    "fr": {
        "headphones": "casque",
        "kettle": "bouilloire",
        "jacket": "veste",
        "backpack": "sac à dos",
        "desk_lamp": "lampe de bureau",
    },
    "es": {
        "headphones": "auriculares",
        "kettle": "hervidor",
        "jacket": "chaqueta",
        "backpack": "mochila",
        "desk_lamp": "lámpara de escritorio",
    },
    "it": {
        "headphones": "cuffie",
        "kettle": "bollitore",
        "jacket": "giacca",
        "backpack": "zaino",
        "desk_lamp": "lampada da scrivania",
    },
    "nl": {
        "headphones": "koptelefoon",
        "kettle": "waterkoker",
        "jacket": "jas",
        "backpack": "rugzak",
        "desk_lamp": "bureaulamp",
    },
    "pl": {
        "headphones": "słuchawki",
        "kettle": "czajnik",
        "jacket": "kurtka",
        "backpack": "plecak",
        "desk_lamp": "lampka biurkowa",
    },
    "sv": {
        "headphones": "hörlurar",
        "kettle": "vattenkokare",
        "jacket": "jacka",
        "backpack": "ryggsäck",
        "desk_lamp": "skrivbordslampa",
    },
    "ja": {
        "headphones": "ヘッドホン",
        "kettle": "電気ケトル",
        "jacket": "ジャケット",
        "backpack": "バックパック",
        "desk_lamp": "デスクライト",
    },
}
LOCAL_PRICE = {
    "de": "{:.2f} €",
    "fr": "{:.2f} €",
    "es": "{:.2f} €",
    "it": "{:.2f} €",
    "nl": "€ {:.2f}",
    "pl": "{:.2f} EUR",
    "sv": "{:.2f} EUR",
    "ja": "€{:.2f}",
}


def _field_name(raw: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", raw.strip().lower()).strip("_")


def _parse_images(text: str) -> list[dict[str, Any]]:
    images = []
    for match in re.finditer(r"([\w.-]+\.(?:jpg|jpeg|png|webp))\s*\((\d+)x(\d+)\)", text, re.I):
        images.append({"file": match[1], "width": int(match[2]), "height": int(match[3])})
    return images


@command()
def extract_product(ctx: CommandContext) -> JSON:
    """Pull structured fields out of the supplier's document, whatever its format.

    A spreadsheet export is a header row and a value row separated by ``;``; PDFs and e-mails
    arrive as text with ``Field: value`` lines among other prose.
    """
    document = ctx.context["document"]
    fmt = ctx.context["source_format"]
    fields: dict[str, str] = {}
    if fmt == "spreadsheet":
        header, values = document.strip().splitlines()[:2]
        for name, value in zip(header.split(";"), values.split(";"), strict=False):
            if value.strip():
                fields[_field_name(name)] = value.strip()
    else:
        for line in document.splitlines():
            name, sep, value = line.partition(":")
            if sep and value.strip() and len(name) <= 30:
                fields[_field_name(name)] = value.strip()
    images = _parse_images(fields.pop("images", ""))
    category = _field_name(fields.pop("category", ""))
    if category not in CATEGORIES:
        name = fields.get("name", "").lower()
        category = next(
            (c for c, cfg in CATEGORIES.items() if any(h in name for h in cfg["hints"])), ""
        )
    return {
        "fields": fields,
        "images": images,
        "category": category or None,
        "source": {"supplier": ctx.context["supplier"], "format": fmt, "fields_found": len(fields)},
    }


@command()
def validate_product(ctx: CommandContext) -> JSON:
    """Check required fields and formats; clarifications from the supplier fill the gaps."""
    extracted = ctx.context["extract"]
    clarified = ctx.context.get("clarify", {})
    fields = {**extracted["fields"], **clarified.get("fields", {})}
    images = clarified.get("images") or extracted["images"]
    category = clarified.get("category") or extracted["category"]
    missing = [f for f in REQUIRED_FIELDS if not fields.get(f)]
    if not category:
        missing.append("category")
    if not images:
        missing.append("images")
    invalid = []
    price = None
    if fields.get("price"):
        match = re.match(r"^\s*(\d+(?:[.,]\d{1,2})?)\s*(EUR|€)?\s*$", fields["price"])
        if match and float(match[1].replace(",", ".")) > 0:
            price = float(match[1].replace(",", "."))
        else:
            invalid.append(f"price {fields['price']!r} is not a positive EUR amount")
    if fields.get("sku") and not re.match(r"^[A-Z0-9]+(-[A-Z0-9]+)+$", fields["sku"]):
        invalid.append(f"sku {fields['sku']!r} does not match the catalogue pattern")
    attributes = {k: v for k, v in fields.items() if k not in (*REQUIRED_FIELDS, "description")}
    return {
        "complete": not missing and not invalid,
        "missing": missing,
        "invalid": invalid,
        "product": {
            "sku": fields.get("sku"),
            "name": fields.get("name"),
            "brand": fields.get("brand"),
            "price": price,
            "category": category,
            "attributes": attributes,
            "images": images,
            "supplier_text": fields.get("description", ""),
        },
    }


@command()
def enrich_product(ctx: CommandContext) -> JSON:
    """Write the description, tags and SEO title; a second pass acts on the reviewer's feedback."""
    product = ctx.context["validate"]["product"]
    cfg = CATEGORIES[product["category"]]
    feedback = ctx.context.get("quality_review", {}).get("feedback", [])
    attrs = product["attributes"]
    label = product["category"].replace("_", " ")
    sentences = [
        f"The {product['name']} by {product['brand']} is a {label} built for everyday use."
    ]
    if product["supplier_text"]:
        sentences.append(product["supplier_text"].rstrip(".") + ".")
    for name in cfg["required"]:
        if name in attrs:
            sentences.append(f"{name.replace('_', ' ').capitalize()}: {attrs[name]}.")
    tags = [label, product["brand"].lower(), *cfg["tags"][:2]]
    title = f"{product['brand']} {product['name']}"
    if feedback:
        sentences += [cfg["usage"], cfg["care"]]
        tags += [t for t in cfg["tags"] if t not in tags]
        if not 30 <= len(title) <= 60:
            title = f"{title} | {label.title()} | Northwind"[:60]
    description = " ".join(sentences)
    return {
        "description": description,
        "words": _words(description),
        "tags": tags,
        "seo_title": title,
        "pass": ctx.context.get("enrich", {}).get("pass", 0) + 1,
        "addressed": feedback,
    }


@command()
def score_quality(ctx: CommandContext) -> JSON:
    """Score content quality, completeness and SEO out of 100, with feedback for a rewrite."""
    product = ctx.context["validate"]["product"]
    enrich = ctx.context["enrich"]
    required = CATEGORIES[product["category"]]["required"]
    present = [a for a in required if a in product["attributes"]]
    feedback = []
    words = enrich["words"]
    text_points = 30 if words >= 50 else 15 if words >= 30 else 0
    if words < 50:
        feedback.append(f"description has {words} words; add usage and care sections")
    attribute_points = round(30 * len(present) / len(required))
    absent = [a for a in required if a not in present]
    if absent:
        feedback.append(f"supplier data lacks {', '.join(absent)}")
    tag_points = min(10, 2 * len(enrich["tags"]))
    if len(enrich["tags"]) < 5:
        feedback.append(f"only {len(enrich['tags'])} tags; use at least 5")
    seo_points = 15 if 30 <= len(enrich["seo_title"]) <= 60 else 0
    if not seo_points:
        feedback.append(f"SEO title is {len(enrich['seo_title'])} characters; aim for 30-60")
    image_points = min(15, 5 * len(product["images"]))
    score = text_points + attribute_points + tag_points + seo_points + image_points
    return {
        "score": score,
        "parts": {
            "text": text_points,
            "attributes": attribute_points,
            "tags": tag_points,
            "seo": seo_points,
            "images": image_points,
        },
        "feedback": feedback,
    }


@command()
def translate_content(ctx: CommandContext) -> JSON:
    """One branch of the translation map: localise title, description and price for a language.

    Flaky on purpose: the translation service rate limits the first attempt for about a
    quarter of the product/language pairs (decided by a hash), and retrying succeeds.
    """
    language = ctx.input
    if language not in TRANSLATION_LANGUAGES:
        raise PermanentError(f"no translation model for language {language!r}")
    if ctx.attempt == 1 and stable_fraction(f"{ctx.key}:{language}") < 0.25:
        raise TransientError("translation service rate limited the request (HTTP 429)")
    product = ctx.context["validate"]["product"]
    enrich = ctx.context["enrich"]
    term = GLOSSARY[language][product["category"]]
    return {
        "language": language,
        "title": f"{product['brand']} {product['name']} - {term}",
        "description": f"[{language}] {enrich['description']}",
        "price": LOCAL_PRICE[language].format(product["price"]),
        "glossary_term": term,
    }


@command()
def final_check(ctx: CommandContext) -> JSON:
    """Before publishing: every requested translation is there and one image is big enough."""
    context = ctx.context
    translations = context["translate"]
    issues = [
        f"translation {lang} missing"
        for lang in context["languages"]
        if not translations.get(lang, {}).get("title")
    ]
    images = context.get("fixed", {}).get("images") or context["validate"]["product"]["images"]
    largest = max((min(i["width"], i["height"]) for i in images), default=0)
    if largest < MIN_IMAGE_SIDE:
        issues.append(
            f"largest image is {largest}px on its short side; the catalogue needs "
            f"{MIN_IMAGE_SIDE}px"
        )
    return {"valid": not issues, "issues": issues, "images": len(images)}


@command()
def publish_to_catalog(ctx: CommandContext) -> JSON:
    """Import the product into the catalogue section for its category and tell the teams."""
    context = ctx.context
    product = context["validate"]["product"]
    section = CATEGORIES[product["category"]]["section"]
    return {
        "catalog_id": f"cat-{product['sku'].lower()}",
        "section": section,
        "languages": sorted(context["translate"]),
        "approved_by": context.get("approve", {}).get("reviewer", "quality gate"),
        "notified": ["merchandising", f"{section} category manager"],
    }
