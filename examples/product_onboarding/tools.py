"""Tools of product_onboarding: read supplier files, check rules, score, template, publish.

None of these calls a model. ``read_file`` parses the supplier's file with a real parser (csv,
openpyxl, pypdf, the e-mail package) into text the ``extractor`` agent reads; ``validate``,
``quality_gate``, ``collect_translations`` and ``final_check`` are rules; ``template_copy``
fills a clearly labelled template when no model wrote the description; ``publish`` writes the
product into a catalogue table (SQLite) at ``$STATEWISE_CATALOG``, by default
``<temp dir>/statewise-examples/product_catalog.sqlite``. Sample files and tables are read
relative to this file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import closing
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from statewise import PermanentError
from statewise.contract import CommandContext, CommandRegistry

HERE = Path(__file__).parent
CATEGORIES = HERE / "data" / "categories.csv"
CATALOG_ENV = "STATEWISE_CATALOG"
TEMPLATE_MARK = "[Template - not written by a model]"

registry = CommandRegistry()

JSON = dict[str, Any]


# --- reading supplier files ---------------------------------------------------------------------


def _cell(value: object) -> str:
    """A spreadsheet cell as text: 179.0 is written 179, empty cells are empty."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Rows under their header as a markdown table, the layout the extractor reads."""
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _pick_row(rows: list[list[str]], row: int, where: str) -> list[str]:
    """The ``row``-th data row (1-based), or a permanent error naming what the file holds."""
    data = [r for r in rows if any(r)]
    if not 1 <= row <= len(data):
        raise PermanentError(f"{where} has {len(data)} product rows; there is no row {row}")
    return data[row - 1]


def _csv_rows(text: str) -> list[list[str]]:
    """A CSV file's rows; the delimiter (comma, semicolon or tab) is read from the header."""
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = max((";", ",", "\t"), key=first.count)
    return [
        [cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), delimiter=delimiter)
    ]


def _is_header(row: Sequence[str]) -> bool:
    return any(cell.strip().lower() == "sku" for cell in row)


def read_csv(data: bytes, where: str, row: int | None) -> JSON:
    """A CSV export: the header and one product row.

    With ``row`` None (an e-mail's attached sheet of extra data) every row is kept and the
    header needs no SKU column.
    """
    rows = _csv_rows(data.decode("utf-8-sig"))
    if not rows or (row is not None and not _is_header(rows[0])):
        raise PermanentError(f"{where}: the first line is not a header with an SKU column")
    header, body = rows[0], rows[1:]
    chosen = [_pick_row(body, row, where)] if row is not None else [r for r in body if any(r)]
    return {"format": "csv", "columns": len(header), "text": _table(header, chosen)}


def read_xlsx(data: bytes, where: str, row: int | None, sheet: str | None) -> JSON:
    """An XLSX workbook: the sheet whose header row has an SKU column, and one product row.

    Suppliers put title blocks and notes above the table, and notes on other sheets, so the
    header is found, not assumed to be the first row.
    """
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several types for files that are not XLSX
        raise PermanentError(f"{where} is not a readable XLSX workbook: {exc}") from None
    try:
        names = [sheet] if sheet else book.sheetnames
        for name in names:
            if name not in book.sheetnames:
                raise PermanentError(f"{where} has no sheet {name!r}: {book.sheetnames}")
            rows = [[_cell(v) for v in r] for r in book[name].iter_rows(values_only=True)]
            start = next((i for i, r in enumerate(rows[:20]) if _is_header(r)), None)
            if start is None:
                continue
            header = rows[start]
            width = max(i for i, cell in enumerate(header) if cell) + 1
            header, body = header[:width], [r[:width] for r in rows[start + 1 :]]
            chosen = [_pick_row(body, row, f"{where}, sheet {name!r}")] if row else body
            return {
                "format": "xlsx",
                "sheet": name,
                "header_row": start + 1,
                "text": _table(header, [r for r in chosen if any(r)]),
            }
    finally:
        book.close()
    raise PermanentError(f"{where}: no sheet has a header row with an SKU column")


def _unwrap(layout: str) -> list[str]:
    """Lines of a data sheet page, each wrapped value joined back onto its label's line.

    In pypdf's layout mode a value that wraps continues on lines indented under the value
    column; the label column is then collapsed to ``Label: value``.
    """
    lines: list[str] = []
    for raw in layout.splitlines():
        if not raw.strip():
            continue
        text = re.sub(r"^(\S[^:]{0,40}:)\s{2,}", r"\1 ", raw.rstrip())
        if raw[:1].isspace() and lines:
            lines[-1] = f"{lines[-1]} {text.strip()}"
        else:
            lines.append(text.strip())
    return lines


def read_pdf(data: bytes, where: str) -> JSON:
    """A PDF data sheet's text layer, page by page; a scan without text is an error."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [_unwrap(page.extract_text(extraction_mode="layout")) for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as exc:
        raise PermanentError(f"{where} is not a readable PDF: {exc}") from None
    if not any(pages):
        raise PermanentError(
            f"{where} has {len(pages)} page(s) but no text layer (a scan?); the data must be "
            "typed in, or sent as a text PDF, spreadsheet or e-mail"
        )
    text = "\n\n".join("\n".join(lines) for lines in pages if lines)
    return {"format": "pdf", "pages": len(pages), "text": text}


class _HTMLText(HTMLParser):
    """The text of an HTML e-mail body, one line per block element or table row."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("p", "br", "tr", "div", "li"):
            self.parts.append("\n")
        elif tag == "td" and self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append(": ")

    def handle_data(self, data: str) -> None:
        self.parts.append(" ".join(data.split()))


def _html_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    return "\n".join(line.strip() for line in "".join(parser.parts).splitlines() if line.strip())


def read_email(data: bytes, where: str) -> JSON:
    """An e-mail: sender, subject, the plain-text body (else the HTML's text), attachments.

    Attached spreadsheets, CSV files and PDFs are read with the same parsers as files.
    """
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        raise PermanentError(f"{where} has no text or HTML body")
    content = body.get_content()
    text = content if body.get_content_subtype() == "plain" else _html_text(content)
    sections = [
        f"E-mail from {message['from']}, subject {message['subject']!r}",
        text.strip(),
    ]
    attachments = []
    for part in message.iter_attachments():
        name = part.get_filename() or "attachment"
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        suffix = Path(name).suffix.lower()
        label = f"{where}, attachment {name}"
        if suffix == ".csv":
            parsed = read_csv(payload, label, None)
        elif suffix == ".xlsx":
            parsed = read_xlsx(payload, label, None, None)
        elif suffix == ".pdf":
            parsed = read_pdf(payload, label)
        else:
            continue
        attachments.append(name)
        sections.append(f"Attached {name}:\n{parsed['text']}")
    return {"format": "email", "attachments": attachments, "text": "\n\n".join(sections)}


def supplier_file(relative: str) -> Path:
    """The supplier file an item names, which must lie inside this example's directory."""
    path = (HERE / relative).resolve()
    if not path.is_relative_to(HERE.resolve()):
        raise PermanentError(f"file {relative!r} is outside the example's directory")
    if not path.is_file():
        raise PermanentError(f"supplier file {relative!r} does not exist")
    return path


@registry.command()
def read_file(ctx: CommandContext) -> JSON:
    """Parse the item's supplier file (CSV, XLSX, PDF, e-mail or text) into text to extract from.

    Spreadsheets hold several products: the item's ``row`` (1-based, default 1) picks one,
    which is passed on with its header row as a table.
    """
    relative = str(ctx.context["file"])
    path = supplier_file(relative)
    data = path.read_bytes()
    row = int(ctx.context.get("row", 1))
    suffix = path.suffix.lower()
    if suffix == ".csv":
        parsed = read_csv(data, relative, row)
    elif suffix == ".xlsx":
        parsed = read_xlsx(data, relative, row, ctx.context.get("sheet"))
    elif suffix == ".pdf":
        parsed = read_pdf(data, relative)
    elif suffix == ".eml":
        parsed = read_email(data, relative)
    elif suffix == ".txt":
        parsed = {"format": "text", "text": data.decode("utf-8").strip()}
    else:
        raise PermanentError(f"no parser for {suffix or 'files without a suffix'} ({relative})")
    if suffix in (".csv", ".xlsx"):
        parsed["row"] = row
    return {"file": relative, "bytes": len(data), **parsed}


# --- reference data -----------------------------------------------------------------------------

ATTRIBUTES = (
    "capacity",
    "power",
    "material",
    "color",
    "weight",
    "connectivity",
    "battery",
    "sizes",
    "waterproof_rating",
    "color_temperature",
)
REQUIRED = ("sku", "name", "brand", "category", "price", "currency", "images")
SKU_PATTERN = re.compile(r"^[A-Z]{2,4}-[A-Z0-9]{2,12}$")
CURRENCIES = frozenset({"EUR", "GBP", "USD", "CHF", "SEK", "NOK", "DKK", "PLN"})
MAX_PRICE = 100_000
MIN_IMAGE_SIDE = 500
HERO_IMAGE_SIDE = 1000
REVIEW_SCORE = 60  # the brief's lower threshold: below it a listing goes back for more
IMAGE = re.compile(r"([\w.-]+\.(?:jpe?g|png|webp))(?:\s*\((\d+)\s*x\s*(\d+)\))?", re.I)


@cache
def categories() -> dict[str, dict[str, Any]]:
    """The catalogue's categories: section, required attributes, tags, usage and care notes."""
    with CATEGORIES.open(encoding="utf-8", newline="") as handle:
        return {
            row["category"]: {
                "section": row["section"],
                "required": row["required_attributes"].split(),
                "tags": row["tags"].split("|"),
                "usage": row["usage"],
                "care": row["care"],
            }
            for row in csv.DictReader(handle)
        }


@registry.tool()
def category_table(category: str) -> dict[str, Any]:
    """Look up a category in the catalogue's category table.

    Returns the catalogue section, the attributes a listing in it must show, its standard
    tags, and its usage and care notes, to write the listing by.

    Args:
        category: The catalogue category: headphones, kettles, jackets, bags or lamps.
    """
    table = categories()
    entry = table.get(category.strip().lower())
    if entry is None:
        return {"category": category, "found": False, "categories": sorted(table)}
    return {"category": category.strip().lower(), "found": True, **entry}


def parse_images(text: str) -> tuple[list[JSON], list[str]]:
    """``file.jpg (2000x2000), ...`` as ``{file, width, height}``, and the problems found."""
    images: list[JSON] = []
    problems: list[str] = []
    for match in IMAGE.finditer(text):
        name, width, height = match.group(1), match.group(2), match.group(3)
        if width is None or height is None:
            problems.append(f"image {name} has no pixel size")
            continue
        image = {"file": name, "width": int(width), "height": int(height)}
        if min(int(width), int(height)) < MIN_IMAGE_SIDE:
            problems.append(
                f"image {name} is {width}x{height}; images need {MIN_IMAGE_SIDE} px on the "
                "short side"
            )
        images.append(image)
    return images, problems


def _present(value: object) -> bool:
    return value is not None and value != "" and value != {}


# --- validate -----------------------------------------------------------------------------------


@registry.command()
def validate(ctx: CommandContext) -> JSON:
    """Required fields, formats and ranges, over the extraction and the supplier's answers.

    A supplier's answer in the clarification task (``clarification.data``) wins over what was
    extracted; answers accumulate, so a second clarification need only send what is still
    missing.
    """
    extracted = {k: v for k, v in (ctx.context.get("extract") or {}).items() if _present(v)}
    earlier = (ctx.context.get("validate") or {}).get("supplied") or {}
    answer = (ctx.context.get("clarification") or {}).get("data") or {}
    supplied = {**earlier, **{k: v for k, v in answer.items() if _present(v)}}
    fields = {**extracted, **{k: v for k, v in supplied.items() if k != "attributes"}}
    if "description" in fields:
        fields["supplier_description"] = fields.pop("description")
    attributes = {a: str(fields[a]) for a in ATTRIBUTES if _present(fields.get(a))}
    attributes.update({k: str(v) for k, v in (supplied.get("attributes") or {}).items() if v})

    missing = [name for name in REQUIRED if not _present(fields.get(name))]
    invalid: list[str] = []
    sku = str(fields.get("sku", "")).strip()
    if sku and not SKU_PATTERN.match(sku):
        invalid.append(f"SKU {sku!r} does not match the catalogue pattern AB-123 (capitals, one -)")
    price = None
    if _present(fields.get("price")):
        try:
            price = round(float(fields["price"]), 2)
        except (TypeError, ValueError):
            invalid.append(f"price {fields['price']!r} is not a number")
        else:
            if not 0 < price < MAX_PRICE:
                invalid.append(f"price {price} is outside 0 < price < {MAX_PRICE}")
    currency = str(fields.get("currency", "")).strip().upper()
    if currency and currency not in CURRENCIES:
        invalid.append(f"currency {currency!r} is not one the catalogue sells in")
    images, problems = parse_images(str(fields.get("images", "")))
    invalid += problems
    if _present(fields.get("images")) and not images and not problems:
        invalid.append("no image file with a pixel size, like name.jpg (2000x2000), is given")
    name = str(fields.get("name", "")).strip()
    if name and not 2 <= len(name) <= 120:
        invalid.append(f"product name {name!r} must have 2 to 120 characters")
    return {
        "complete": not missing and not invalid,
        "missing": missing,
        "invalid": invalid,
        "supplied": supplied,
        "product": {
            "sku": sku or None,
            "name": name or None,
            "brand": fields.get("brand"),
            "supplier_category": fields.get("category"),
            "price": price,
            "currency": currency or None,
            "images": images,
            "attributes": attributes,
            "supplier_description": fields.get("supplier_description"),
        },
    }


# --- the listing copy: the model's, or a labelled template ---------------------------------------


def _tags(ctx: CommandContext) -> tuple[list[str], str]:
    """The listing's tags and who chose them: the model's list, else the category's and its use."""
    enrich = ctx.context["enrich"]
    model_tags = [str(t) for t in enrich.get("tags") or [] if str(t).strip()]
    if model_tags:
        return model_tags, "model"
    tags = list(categories()[enrich["category"]]["tags"])
    if enrich.get("primary_use"):
        tags.append(str(enrich["primary_use"]))
    return tags, "category table and the model's primary_use"


def _title(product: JSON) -> str:
    return f"{product['brand']} {product['name']}"


META_TITLE_MAX = 60
META_DESCRIPTION = (50, 160)  # a search snippet says something, and is not cut off


def _cut(text: str, limit: int) -> str:
    """``text`` cut at the last word boundary within ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit + 1].rsplit(" ", 1)[0].rstrip(" ,;:-")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _seo(ctx: CommandContext, title: str) -> JSON:
    """Meta title, meta description, keywords and slug: the model's, else made from the facts.

    The slug is always derived from the title (a rule, not copy). Without a model's meta
    description the supplier's first sentence, else the facts, stand in; the listing is then
    a template and a person approves it before it is published.
    """
    product = ctx.context["validate"]["product"]
    enrich = ctx.context["enrich"]
    section = categories()[enrich["category"]]["section"]
    written = bool(enrich.get("meta_title") and enrich.get("meta_description"))
    if written:
        meta_title = str(enrich["meta_title"]).strip()
        meta_description = str(enrich["meta_description"]).strip()
    else:
        meta_title = _cut(f"{title} | {section}", META_TITLE_MAX)
        supplier = str(product.get("supplier_description") or "").strip()
        facts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in product["attributes"].items())
        if supplier:
            source = supplier.split(". ")[0].rstrip(".") + "."
        else:
            source = f"{title}: {facts}." if facts else f"{title}."
        meta_description = _cut(source, META_DESCRIPTION[1] - 3)
        if meta_description != source:
            meta_description += "..."
    keywords = [str(k).strip().lower() for k in enrich.get("keywords") or [] if str(k).strip()]
    if not keywords:
        keywords = [str(product["name"]).lower(), enrich["category"], str(product["brand"]).lower()]
        if enrich.get("primary_use"):
            keywords.append(f"{enrich['category']} for {enrich['primary_use']}")
    return {
        "meta_title": meta_title,
        "meta_description": meta_description,
        "keywords": keywords,
        "slug": _slug(title),
        "written_by": "model" if written else "template",
    }


@registry.command()
def model_copy(ctx: CommandContext) -> JSON:
    """Adopt the description the enrich agent wrote, as the listing's copy."""
    product = ctx.context["validate"]["product"]
    enrich = ctx.context["enrich"]
    tags, tags_by = _tags(ctx)
    description = str(enrich["description"]).strip()
    return {
        "written_by": "model",
        "title": str(enrich.get("title") or _title(product)),
        "description": description,
        "words": len(description.split()),
        "includes": ["model_text"],
        "tags": tags,
        "tags_by": tags_by,
        "seo": _seo(ctx, str(enrich.get("title") or _title(product))),
    }


@registry.command()
def template_copy(ctx: CommandContext) -> JSON:
    """No model wrote a description: fill a labelled template from the extracted facts.

    The template quotes the supplier's own description when there is one, else lists the
    attributes (which the catalogue also shows in their own table). Once the quality
    gate has asked for usage and care notes, it adds the category's standard ones from
    ``data/categories.csv`` (on every later pass too). The text starts with the template
    label, always.
    """
    product = ctx.context["validate"]["product"]
    category = ctx.context["enrich"]["category"]
    info = categories()[category]
    asks = (ctx.context.get("quality_gate") or {}).get("asks") or []
    earlier = (ctx.context.get("copy") or {}).get("includes") or []
    parts = [f"{TEMPLATE_MARK} {_title(product)} ({category})."]
    includes = []
    if product.get("supplier_description"):
        parts.append(f'From the supplier: "{str(product["supplier_description"]).strip()}"')
        includes.append("supplier_text")
    else:  # the attributes have their own table in the catalogue; here they stand in for text
        for name, value in product["attributes"].items():
            parts.append(f"{name.replace('_', ' ').capitalize()}: {value}.")
        includes.append("facts")
    if "usage_and_care" in asks or "usage_and_care" in earlier:
        parts.append(f"How to use: {info['usage']} Care: {info['care']}")
        includes.append("usage_and_care")
    description = " ".join(parts)
    tags, tags_by = _tags(ctx)
    return {
        "written_by": "template",
        "title": _title(product),
        "description": description,
        "words": len(description.split()),
        "includes": includes,
        "tags": tags,
        "tags_by": tags_by,
        "seo": _seo(ctx, _title(product)),
    }


# --- the quality gate ---------------------------------------------------------------------------


def completeness(
    product: JSON, category: str, copy: JSON
) -> tuple[dict[str, int], list[str], list[str]]:
    """The listing's completeness rubric: points per part, findings, and what to ask for."""
    required = categories()[category]["required"]
    absent = [a for a in required if a not in product["attributes"]]
    findings, asks = [], []
    attributes = round(45 * (len(required) - len(absent)) / len(required))
    if absent:
        findings.append(f"attributes missing for {category}: {', '.join(absent)}")
        asks.append("attributes")
    large = [i for i in product["images"] if min(i["width"], i["height"]) >= HERO_IMAGE_SIDE]
    images = 20 if len(large) >= 2 else 12 if large else 6 if product["images"] else 0
    if images < 20:
        findings.append(f"{len(large)} image(s) of {HERO_IMAGE_SIDE} px or more; 2 are wanted")
        asks.append("images")
    includes = set(copy.get("includes", []))
    supplier_words = len(str(product.get("supplier_description") or "").split())
    if "model_text" in includes:
        text = 25
    elif "supplier_text" in includes:  # a good supplier text is nearly as good as copy
        text = 22 if supplier_words >= 20 else 12
    elif "usage_and_care" in includes:
        text = 12
    else:  # a list of facts is not a description
        text = 0
    if "model_text" not in includes:
        findings.append("the description is a template, not written copy")
        if "supplier_text" not in includes and "usage_and_care" not in includes:
            findings.append("it says nothing about how to use the product or care for it")
            asks.append("usage_and_care")
    seo, seo_findings = search_points(product, copy.get("seo") or {})
    if len(str(product["name"]).split()) < 3:
        asks.append("name")
    findings += seo_findings
    parts = {"attributes": attributes, "images": images, "text": text, "seo": seo}
    return parts, findings, asks


def search_points(product: JSON, seo: JSON) -> tuple[int, list[str]]:
    """Search optimisation, 10 points: a name that says what it is 4, meta title 3, snippet 3."""
    points, findings = 0, []
    if len(str(product["name"]).split()) >= 3:
        points += 4
    else:
        findings.append(f"the product name {product['name']!r} does not say what it is")
    meta_title = str(seo.get("meta_title") or "")
    if 0 < len(meta_title) <= META_TITLE_MAX:
        points += 3
    else:
        findings.append(f"the meta title needs 1 to {META_TITLE_MAX} characters")
    low, high = META_DESCRIPTION
    if low <= len(str(seo.get("meta_description") or "")) <= high:
        points += 3
    else:
        findings.append(f"the meta description needs {low} to {high} characters")
    return points, findings


# What a revision by enrich can lift at best: the text part (a model's rewrite, or the
# category's usage and care notes in a template) and the reviewer's score (a template's copy
# scores at most TEMPLATE_COPY_SCORE on the reviewer's own scale). Attributes, images and the
# name are facts only the supplier can give.
TEMPLATE_COPY_SCORE = 60
WRITTEN_TEXT_POINTS = 25
TEMPLATE_USAGE_POINTS = 12


def best_after_enrich(parts: dict[str, int], copy: JSON, copy_score: int) -> int:
    """The score the listing could reach if enrich did all it can, and nothing else changed."""
    if copy["written_by"] == "model":
        text, best_copy = WRITTEN_TEXT_POINTS, 100
    else:
        text, best_copy = max(parts["text"], TEMPLATE_USAGE_POINTS), TEMPLATE_COPY_SCORE
        if "supplier_text" in copy.get("includes", []):
            text = parts["text"]  # a template quoting the supplier keeps that text
        best_copy = max(best_copy, copy_score)
    rubric = parts["attributes"] + parts["images"] + text + parts["seo"]
    return round(0.7 * rubric + 0.3 * best_copy)


def supplier_asks(product: JSON, category: str, asks: list[str]) -> list[str]:
    """What only the supplier can send, each as a sentence for the supplier's task."""
    said = []
    if "attributes" in asks:
        absent = [a for a in categories()[category]["required"] if a not in product["attributes"]]
        names = [a.replace("_", " ").replace("color", "colour") for a in absent]
        listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        section = categories()[category]["section"]
        said.append(f"Please send the product's {listed}: every listing in {section} shows them.")
    if "images" in asks:
        said.append(
            f"Please send two product images of at least {HERO_IMAGE_SIDE} px on the short side."
        )
    if "name" in asks:
        said.append(
            f"Please send a product name that says what it is (not only {product['name']!r})."
        )
    return said


@registry.command()
def quality_gate(ctx: CommandContext) -> JSON:
    """The quality score: 70% the completeness rubric, 30% the reviewer agent's copy score.

    The workflow routes on ``score``: above 80 on to translation (unless the copy is a
    template, which a person approves), 60 to 80 to a category manager, below 60 back to
    enrich with ``feedback`` (the reviewer's own words when the model wrote any, else the
    rubric's findings) if a revision could reach 60 (``enrich_can_fix``), else to the
    supplier with ``ask_supplier``: what is missing are facts, which enrich must not invent.
    """
    product = ctx.context["validate"]["product"]
    copy = ctx.context["copy"]
    review = ctx.context["quality_review"]
    parts, findings, asks = completeness(product, ctx.context["enrich"]["category"], copy)
    rubric = sum(parts.values())
    copy_score = int(review["copy_score"])
    score = round(0.7 * rubric + 0.3 * copy_score)
    written = str(review.get("feedback") or "").strip()
    best = best_after_enrich(parts, copy, copy_score)
    category = ctx.context["enrich"]["category"]
    return {
        "score": score,
        "completeness": rubric,
        "copy_score": copy_score,
        "parts": parts,
        "findings": findings,
        "asks": asks,
        "feedback": written or "; ".join(findings) or "no findings",
        "feedback_by": "model" if written else "rubric",
        "best_after_enrich": best,
        "enrich_can_fix": best >= REVIEW_SCORE,
        "ask_supplier": supplier_asks(product, category, asks),
        "pass": int((ctx.context.get("quality_gate") or {}).get("pass", 0)) + 1,
    }


# --- translations -------------------------------------------------------------------------------


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


@registry.command()
def collect_translations(ctx: CommandContext) -> JSON:
    """Keep each branch's translation if the model wrote one; never pass English off as one.

    A branch whose model filled no translation (the local model cannot translate), or whose
    "translation" is the English description itself, is marked ``translated_by: "none"`` and
    listed in ``missing``, for the translators' task.
    """
    copy = ctx.context["copy"]
    branches = ctx.context.get("translate") or {}
    by_language: dict[str, JSON] = {}
    missing = []
    for language in ctx.context.get("languages") or []:
        out = branches.get(language) or {}
        title = str(out.get("translated_title") or "").strip()
        text = str(out.get("translated_description") or "").strip()
        if not title or not text:
            by_language[language] = {"translated_by": "none", "reason": "no translation written"}
            missing.append(language)
        elif _same_text(text, copy["description"]):
            reason = "the text returned is the English description, not a translation"
            by_language[language] = {"translated_by": "none", "reason": reason}
            missing.append(language)
        else:
            by_language[language] = {"title": title, "description": text, "translated_by": "model"}
    return {"by_language": by_language, "missing": missing}


# --- final check and publishing -----------------------------------------------------------------


def _translations(context: Mapping[str, Any]) -> dict[str, JSON]:
    """Every language's translation: the model's, then a translator's, then a fix, each winning."""
    found: dict[str, JSON] = {}
    for language, entry in ((context.get("translations") or {}).get("by_language") or {}).items():
        if entry.get("translated_by") == "model":
            found[language] = entry
    for step in ("human_translation", "fix_issues"):
        decision = context.get(step) or {}
        for language, entry in ((decision.get("data") or {}).get("translations") or {}).items():
            found[language] = {**entry, "translated_by": str(decision.get("by"))}
    return found


@registry.command()
def final_check(ctx: CommandContext) -> JSON:
    """Before publishing: every language translated (and not English), a hero image, the copy."""
    context = ctx.context
    copy = context["copy"]
    product = context["validate"]["product"]
    translations = _translations(context)
    issues = []
    for language in context.get("languages") or []:
        entry = translations.get(language)
        if not entry or not entry.get("title") or not entry.get("description"):
            issues.append(f"no {language} translation")
        elif _same_text(str(entry["description"]), copy["description"]):
            issues.append(f"the {language} description is the English text, not a translation")
    fixed_images = ((context.get("fix_issues") or {}).get("data") or {}).get("images")
    images = parse_images(str(fixed_images))[0] if fixed_images else product["images"]
    hero = max((min(i["width"], i["height"]) for i in images), default=0)
    if hero < HERO_IMAGE_SIDE:
        issues.append(
            f"the largest image is {hero} px on its short side; the catalogue's hero image needs "
            f"{HERO_IMAGE_SIDE} px"
        )
    if copy["written_by"] == "template" and not copy["description"].startswith(TEMPLATE_MARK):
        issues.append("a template description lost its label")
    return {
        "valid": not issues,
        "issues": issues,
        "hero_image_px": hero,
        "images": images,
        "languages": sorted(translations),
    }


def catalog_path() -> Path:
    """Where the catalogue table lives: ``$STATEWISE_CATALOG``, else a file in the temp dir."""
    configured = os.environ.get(CATALOG_ENV)
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / "statewise-examples" / "product_catalog.sqlite"


CATALOG_TABLE = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY,
    item_key TEXT NOT NULL,
    name TEXT NOT NULL,
    brand TEXT NOT NULL,
    category TEXT NOT NULL,
    section TEXT NOT NULL,
    price REAL NOT NULL,
    currency TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    description_by TEXT NOT NULL,
    tags TEXT NOT NULL,
    attributes TEXT NOT NULL,
    images TEXT NOT NULL,
    translations TEXT NOT NULL,
    quality_score INTEGER,
    approved_by TEXT NOT NULL,
    seo TEXT NOT NULL DEFAULT '{}'
)
"""
JSON_COLUMNS = ("tags", "attributes", "images", "translations", "seo")
# Columns added since the table was first written; a catalogue file from an earlier run gets them.
LATER_COLUMNS = {"seo": "TEXT NOT NULL DEFAULT '{}'"}


def _approved_by(context: Mapping[str, Any]) -> str:
    for step in ("escalation_review", "human_review"):
        decision = context.get(step) or {}
        if decision.get("outcome") == "approve":
            return str(decision.get("by"))
    return "quality gate"


@registry.command()
def publish(ctx: CommandContext) -> JSON:
    """Write the product into the catalogue table; publishing the same SKU again updates it."""
    context = ctx.context
    product = context["validate"]["product"]
    copy = context["copy"]
    category = context["enrich"]["category"]
    check = context["final_check"]
    translations = {
        language: entry
        for language, entry in _translations(context).items()
        if language in (context.get("languages") or [])
    }
    row = {
        "sku": product["sku"],
        "item_key": ctx.key,
        "name": product["name"],
        "brand": product["brand"],
        "category": category,
        "section": categories()[category]["section"],
        "price": product["price"],
        "currency": product["currency"],
        "title": copy["title"],
        "description": copy["description"],
        "description_by": copy["written_by"],
        "tags": json.dumps(copy["tags"], ensure_ascii=False),
        "attributes": json.dumps(product["attributes"], ensure_ascii=False, sort_keys=True),
        "images": json.dumps(check["images"]),
        "translations": json.dumps(translations, ensure_ascii=False, sort_keys=True),
        "quality_score": (context.get("quality_gate") or {}).get("score"),
        "approved_by": _approved_by(context),
        "seo": json.dumps(copy["seo"], ensure_ascii=False, sort_keys=True),
    }
    path = catalog_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ", ".join(row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != "sku")
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(CATALOG_TABLE)
        present = {column[1] for column in db.execute("PRAGMA table_info(products)")}
        for column, declaration in LATER_COLUMNS.items():
            if column not in present:
                db.execute(f"ALTER TABLE products ADD COLUMN {column} {declaration}")
        db.execute(
            f"INSERT INTO products ({columns}) VALUES ({', '.join('?' for _ in row)}) "
            f"ON CONFLICT(sku) DO UPDATE SET {updates}",
            list(row.values()),
        )
    record = {
        **row,
        **{column: json.loads(row[column]) for column in JSON_COLUMNS},
    }
    notice = (
        f"{row['brand']} {row['name']} ({row['sku']}) is published in {row['section']}, in "
        f"English{''.join(f', {language}' for language in sorted(translations))}; approved by "
        f"{row['approved_by']}; description written by {copy['written_by']}."
    )
    return {
        "catalog": str(path),
        "sku": product["sku"],
        "section": row["section"],
        "languages": sorted(translations),
        "description_by": copy["written_by"],
        "approved_by": row["approved_by"],
        "slug": copy["seo"]["slug"],
        "record": record,
        "notice": {"text": notice, "sku": product["sku"], "item": ctx.key},
    }
