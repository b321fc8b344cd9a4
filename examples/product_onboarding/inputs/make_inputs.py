"""Write the sample supplier files of product_onboarding into this directory.

The files are kept in the repository; run this only to change them:

    .venv/bin/python examples/product_onboarding/inputs/make_inputs.py

It needs openpyxl (the ``examples`` extra) and nothing else: the PDF data sheets are written
by hand here as small, valid PDF 1.4 files with a real text layer (Helvetica, one ``Tj`` per
line), which pypdf reads back like any supplier's PDF. The output is byte-for-byte the same on
every run: no timestamps, no random ids.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font

HERE = Path(__file__).parent
SAVED_AT = "2025-01-15T09:00:00Z"

# --- CSV: a European price list (semicolons) and a US-style export (commas, quoted) ----------

KESSEL_HEADER = [
    "SKU",
    "Product name",
    "Brand",
    "Category",
    "Price",
    "Currency",
    "Capacity",
    "Power",
    "Material",
    "Colour",
    "Description",
    "Images",
]
KESSEL_ROWS = [
    [
        "KC-K17",
        "Steel kettle 1.7 litre",
        "Kessel & Co",
        "Kettles",
        "59.90",
        "EUR",
        "1.7 l",
        "2200 W",
        "brushed stainless steel",
        "silver",
        "A brushed steel body with a cool-touch handle, a 360-degree base and a removable "
        "limescale filter: fill, boil and pour one-handed in a busy kitchen, every morning.",
        "kc-k17.jpg (1800x1800), kc-k17-open.jpg (1800x1800), kc-k17-base.jpg (1200x1200)",
    ],
    [
        "KC-TRAVEL",
        "Travel kettle 0.5 litre",
        "Kessel & Co",
        "Kettles",
        "on request",
        "EUR",
        "0.5 l",
        "1000 W",
        "plastic",
        "white",
        "",
        "kc-travel.jpg (1500x1500)",
    ],
    [
        "KC-GOOSE",
        "Gooseneck pour-over kettle",
        "Kessel & Co",
        "Kettles",
        "94.00",
        "EUR",
        "0.9 l",
        "1200 W",
        "matte steel",
        "black",
        "A slim gooseneck spout pours a steady, thin stream for pour-over coffee.",
        "kc-goose.jpg (1600x1600)",
    ],
]

LUXA_HEADER = [
    "sku",
    "name",
    "brand",
    "category",
    "price",
    "currency",
    "power",
    "color_temperature",
    "material",
    "color",
    "description",
    "images",
]
LUXA_ROWS = [
    [
        "LX-ARC2",
        "Arc 2 LED desk lamp with dimmer",
        "Luxa",
        "Lighting / Desk lamps",
        "129.00",
        "EUR",
        "9 W",
        "2700-6500 K",
        "anodised aluminium",
        "matte black",
        "An aluminium arm balances in any position without knobs, the diffuser spreads "
        "glare-free light across a whole desk, and a memory function returns to your last "
        "brightness when you switch it on in the morning.",
        "lx-arc2.jpg (2200x2200), lx-arc2-lit.jpg (2200x2200)",
    ],
    [
        "LX-MINI",
        "Mini clamp reading lamp",
        "Luxa",
        "Lighting / Reading lights",
        "49.00",
        "EUR",
        "5 W",
        "",
        "",
        "sage",
        "",
        "lx-mini.jpg (1200x1200)",
    ],
]

# --- XLSX: a range list with a title block above the table, and a workbook with a notes sheet --

TRAILHEAD_HEADER = [
    "SKU",
    "Product name",
    "Brand",
    "Category",
    "Price",
    "Currency",
    "Capacity",
    "Material",
    "Weight",
    "Colour",
    "Description",
    "Images",
]
TRAILHEAD_ROWS: list[list[object]] = [
    [
        "TH-ALP38",
        "Alpine 38 litre backpack",
        "Trailhead",
        "Bags & packs",
        179.0,
        "GBP",
        "38 l",
        "recycled 210D nylon",
        "1.1 kg",
        "moss green",
        "The back panel breathes on warm climbs, the lid pocket opens wide enough for a map, "
        "and compression straps keep half-full loads steady on rough granite.",
        "th-alp38-front.jpg (2000x2600), th-alp38-back.jpg (2000x2600)",
    ],
    [
        "TH-HIP5",
        "Hip 5 waist bag",
        "Trailhead",
        "Bags & packs",
        45.0,
        "GBP",
        "5 l",
        "nylon",
        "0.3 kg",
        None,
        None,
        "th-hip5.jpg (2000x2000), th-hip5-worn.jpg (2000x2000)",
    ],
    [
        "TH-CITY20",
        "City commuter daypack 20",
        "Trailhead",
        "Bags & packs",
        109000.0,
        "GBP",
        "20 l",
        "waxed canvas",
        "0.9 kg",
        "sand",
        "A waxed canvas daypack with a padded sleeve for a 15-inch laptop.",
        "th-city20.jpg (1800x1800)",
    ],
]

BRIGHTLINE_HEADER = [
    "SKU",
    "Product name",
    "Brand",
    "Category",
    "Price",
    "Currency",
    "Connectivity",
    "Battery",
    "Weight",
    "Colour",
    "Description",
    "Images",
]
BRIGHTLINE_ROWS: list[list[object]] = [
    [
        "BL-E50",
        "Pulse 50 true wireless earbuds",
        "Brightline",
        "Audio > Earbuds",
        99.0,
        "EUR",
        "Bluetooth 5.3, multipoint",
        "8 h, 32 h with the charging case",
        "0.05 kg",
        "white",
        "Six microphones keep calls clear on windy streets, and the pocket-sized case "
        "charges the buds three more times before it needs a cable.",
        "bl-e50.jpg (2000x2000), bl-e50-case.jpg (2000x2000)",
    ],
    [
        "BL-K3",
        "Kids K3 wired headphones",
        "Brightline",
        "Audio > Headphones",
        39.0,
        "EUR",
        "3.5 mm cable, volume limited to 85 dB",
        "none (wired)",
        "0.15 kg",
        "yellow",
        None,
        "bl-k3.jpg (1500x1500), bl-k3-fold.jpg (1500x1500)",
    ],
]

# --- PDF data sheets: lines of (label, value) on a page; long values wrap -----------------------

VOYAGER = [
    [
        ("title", "PRODUCT DATA SHEET"),
        ("text", "Brightline Audio GmbH - Produktdatenblatt / product data sheet 2025"),
        ("field", "SKU", "BL-H200"),
        ("field", "Product name", "Voyager 200 wireless headphones"),
        ("field", "Brand", "Brightline"),
        ("field", "Category", "Audio > Headphones"),
        ("field", "Price", "149.00"),
        ("field", "Currency", "EUR"),
        ("field", "Connectivity", "Bluetooth 5.3, USB-C audio"),
        ("field", "Battery", "30 h with noise cancelling on"),
        ("field", "Weight", "0.28 kg"),
        ("field", "Colour", "graphite"),
    ],
    [
        ("title", "MARKETING AND MEDIA"),
        (
            "field",
            "Description",
            "Adaptive noise cancelling blocks engine hum on flights and trains, and the "
            "transparency mode lets voices through with one tap on the left cup. The fold-flat "
            "hinges slip the headphones into any bag.",
        ),
        ("field", "Images", "bl-h200-front.jpg (2000x2000), bl-h200-side.jpg (1600x1600)"),
        ("text", "Confidential until the launch date. (c) Brightline Audio GmbH"),
    ],
]
STORM_SHELL = [
    [
        ("title", "FJELLSTAD OUTDOOR AS - TECHNICAL SHEET"),
        ("field", "SKU", "FJ-SHELL3"),
        ("field", "Product name", "Storm shell 3L rain jacket"),
        ("field", "Brand", "Fjellstad"),
        ("field", "Category", "Outdoor jackets"),
        ("field", "Price", "289.00"),
        ("field", "Currency", "EUR"),
        ("field", "Material", "3-layer recycled polyamide"),
        ("field", "Sizes", "XS-XXL"),
        ("field", "Waterproof rating", "20,000 mm"),
        ("field", "Colour", "fjord blue"),
        (
            "field",
            "Description",
            "Three-layer recycled shell with fully taped seams, pit zips for ventilation and a "
            "helmet-compatible hood that adjusts with one hand, for fast hikes and wet city "
            "commutes alike.",
        ),
        ("field", "Images", "fj-shell3-front.jpg (2400x3000), fj-shell3-back.jpg (2400x3000)"),
    ]
]
PEAK_VEST = [
    [
        ("title", "PEAK APPAREL LTD"),
        ("text", "Spring collection - product information"),
        ("field", "SKU", "pk_vest_01"),
        ("field", "Product name", "Softshell vest"),
        ("field", "Brand", "Peak"),
        ("field", "Category", "Jackets & vests"),
        ("field", "Price", "79.00"),
        ("field", "Currency", "EUR"),
        ("field", "Material", "softshell"),
        ("field", "Sizes", "S-XL"),
        ("field", "Colour", "red"),
        ("field", "Images", "pk-vest.jpg (1400x1400)"),
    ]
]

# --- E-mails ----------------------------------------------------------------------------------

NORDVIK_BODY = """\
Hello catalogue team,

please find the details for our new studio headphones below. Photos are on the shared drive.

SKU: NV-H10
Product name: Studio monitor headphones
Category: Headphones
Price: 89.00
Currency: EUR
Connectivity: 3.5 mm cable with 6.3 mm adapter
Battery: none (wired)
Weight: 0.31 kg
Colour: black
Description: {description}
Images: nv-h10.jpg (1400x1400)

The brand name is still being registered; we will send it as soon as it is final.

Kind regards,
Maja Lind
Nordvik Trading AB
""".format(
    description="Closed-back cups and a flat response let you hear a mix as it is, and the "
    "coiled cable stretches from the desk to the mixing console without tugging."
)

FEATHERLITE_TEXT = """\
Hi team,

here is the Featherlite for the Irish web shop (English only), as we discussed.

SKU: FJ-LITE
Product name: Featherlite wind jacket
Brand: Fjellstad
Category: Outdoor jackets
Price: 149.00
Currency: EUR
Material: ripstop nylon
Sizes: XS-XL
Waterproof rating: 5,000 mm
Colour: lime
Description: {description}
Images: fj-lite-front.jpg (800x800), fj-lite-packed.jpg (800x800)

Best,
Ola Berg, Fjellstad Outdoor AS
""".format(
    description="A wind jacket that packs into its own chest pocket, with a dropped hem that "
    "keeps the wind off on the bike and reflective tabs for the ride home in the dark."
)

FEATHERLITE_HTML = """\
<html><body><p>Hi team,</p><p>here is the Featherlite for the Irish web shop (English only), as we
discussed.</p><table><tr><td>SKU</td><td>FJ-LITE</td></tr>
<tr><td>Product name</td><td>Featherlite wind jacket</td></tr></table>
<p>Best,<br>Ola Berg, Fjellstad Outdoor AS</p></body></html>
"""

DOWN_PARKA_BODY = """\
Hello,

the parka for the winter range: the basics are below and the technical data is in the
attached sheet.

SKU: FJ-DOWN2
Product name: Recycled down parka
Brand: Fjellstad
Category: Outdoor jackets
Price: 349.00
Currency: EUR
Images: fj-down2-front.jpg (2400x3000), fj-down2-hood.jpg (2400x3000)

Regards,
Ola Berg
"""
DOWN_PARKA_SHEET = [
    ["Material", "Sizes", "Waterproof rating", "Colour", "Description"],
    [
        "recycled down, 700 fill power",
        "S-XL",
        "10,000 mm",
        "black",
        "Recycled down in baffled chambers keeps the warmth where it belongs, and the "
        "two-way zip lets you sit on the bike or at the bus stop without the parka riding up.",
    ],
]

GLOBALGAD_TEXT = """\
---------- Forwarded message ---------
From: Global Gadgets Import <offers@globalgad.example>
Subject: new item for your shop!!

Dear Sir or Madam,

we offer you our best seller, good quality and very cheap price.

SKU: GG-BT1
Product name: BT1 earphones
Brand: Globalgad
Category: Electronics
Price: 19.99
Currency: EUR
Images: gg-bt1.jpg (600x600)

Please order soon.
"""


def write_csv() -> None:
    with (HERE / "kessel_pricelist_2025.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter=";", lineterminator="\n")
        writer.writerow(KESSEL_HEADER)
        writer.writerows(KESSEL_ROWS)
    with (HERE / "luxa_products.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(LUXA_HEADER)
        writer.writerows(LUXA_ROWS)


def _save(workbook: Workbook, path: Path) -> None:
    """Save, then pin the save time openpyxl stamps in, so the file is the same on every run."""
    buffer = io.BytesIO()
    workbook.properties.creator = "supplier"
    workbook.save(buffer)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w") as target:
        for entry in source.infolist():
            data = source.read(entry.filename)
            if entry.filename == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", SAVED_AT.encode(), data)
            pinned = zipfile.ZipInfo(entry.filename, date_time=(2025, 1, 15, 9, 0, 0))
            pinned.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(pinned, data)


def write_xlsx() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Range 2025"
    sheet["A1"] = "Trailhead Packs Ltd - product range 2025"
    sheet["A1"].font = Font(bold=True, size=14)
    sheet["A2"] = "Prices in GBP, excluding VAT. Questions: range@trailhead.example"
    sheet.append([])
    sheet.append(TRAILHEAD_HEADER)
    for cell in sheet[4]:
        cell.font = Font(bold=True)
    for row in TRAILHEAD_ROWS:
        sheet.append(row)
    _save(book, HERE / "trailhead_range_2025.xlsx")

    book = Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "Read me"
    notes["A1"] = "Brightline Audio GmbH - new products for the 2025 catalogue"
    notes["A2"] = "One product per row on the sheet Products. Prices are recommended retail."
    products = book.create_sheet("Products")
    products.append(BRIGHTLINE_HEADER)
    for cell in products[1]:
        cell.font = Font(bold=True)
    for row in BRIGHTLINE_ROWS:
        products.append(row)
    _save(book, HERE / "brightline_audio_2025.xlsx")


# --- A minimal PDF writer: Helvetica text, WinAnsi, no compression tricks ----------------------


def _pdf_string(text: str) -> str:
    data = text.encode("cp1252")
    escaped = data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return "(" + escaped.decode("latin-1") + ")"


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        lines.append(current)
    return lines


def _page_stream(lines: list[tuple[str, ...]]) -> bytes:
    """Content stream of one page: a title, then labels at x=72 and values at x=200."""
    ops = ["BT"]
    y = 780
    for line in lines:
        kind = line[0]
        if kind == "title":
            ops += ["/F2 14 Tf", f"1 0 0 1 72 {y} Tm", f"{_pdf_string(line[1])} Tj"]
            y -= 28
        elif kind == "text":
            ops += ["/F1 9 Tf", f"1 0 0 1 72 {y} Tm", f"{_pdf_string(line[1])} Tj"]
            y -= 22
        else:
            _, label, value = line
            ops += ["/F2 10 Tf", f"1 0 0 1 72 {y} Tm", f"{_pdf_string(label + ':')} Tj"]
            for part in _wrap(value, 70):
                ops += ["/F1 10 Tf", f"1 0 0 1 200 {y} Tm", f"{_pdf_string(part)} Tj"]
                y -= 14
            y -= 6
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def _image_page_stream() -> bytes:
    """A page that is only a picture: what a scanner produces, with no text layer."""
    return b"q 451 0 0 640 72 100 cm /Im1 Do Q"


def write_pdf(path: Path, pages: list[list[tuple[str, ...]]] | None, title: str) -> None:
    """A PDF 1.4 file: catalog, pages, two fonts, then a page and its content per page."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below, once the page tree's number is known
    tree = add(b"")
    regular = add(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    bold = add(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
    )
    resources = f"/Font << /F1 {regular} 0 R /F2 {bold} 0 R >>"
    kids = []
    streams = [_page_stream(p) for p in pages] if pages else [_image_page_stream()]
    image = None
    if pages is None:
        # An 8x8 grey "scan", Flate-compressed, shown across the page.
        pixels = zlib.compress(bytes((i * 37) % 256 for i in range(64)))
        image = add(
            b"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray "
            b"/BitsPerComponent 8 /Filter /FlateDecode /Length "
            + str(len(pixels)).encode()
            + b" >>\nstream\n"
            + pixels
            + b"\nendstream"
        )
        resources = f"/XObject << /Im1 {image} 0 R >>"
    for stream in streams:
        content = add(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"
        )
        page = add(
            f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 595 842] "
            f"/Resources << {resources} >> /Contents {content} 0 R >>".encode()
        )
        kids.append(page)
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {tree} 0 R >>".encode()
    kid_refs = " ".join(f"{k} 0 R" for k in kids)
    objects[tree - 1] = f"<< /Type /Pages /Kids [{kid_refs}] /Count {len(kids)} >>".encode()
    info = add(f"<< /Title {_pdf_string(title)} /Producer (make_inputs.py) >>".encode())

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R /Info {info} 0 R >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    path.write_bytes(bytes(out))


def write_pdfs() -> None:
    write_pdf(HERE / "brightline_voyager200.pdf", VOYAGER, "Voyager 200 data sheet")
    write_pdf(HERE / "fjellstad_storm_shell.pdf", STORM_SHELL, "Storm shell 3L technical sheet")
    write_pdf(HERE / "peak_softshell_vest.pdf", PEAK_VEST, "Softshell vest")
    write_pdf(HERE / "halvorsen_scan.pdf", None, "Scanned data sheet")


# --- E-mails ----------------------------------------------------------------------------------


def _message(sender: str, subject: str, message_id: str) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = "onboarding@catalogue.example"
    message["Subject"] = subject
    message["Date"] = "Wed, 15 Jan 2025 09:30:00 +0100"
    message["Message-ID"] = f"<{message_id}@mail.example>"
    return message


def write_emails() -> None:
    nordvik = _message("Maja Lind <maja@nordvik.example>", "New product: NV-H10", "nv-h10")
    nordvik.set_content(NORDVIK_BODY)
    (HERE / "nordvik_studio_headphones.eml").write_bytes(nordvik.as_bytes())

    lite = _message("Ola Berg <ola@fjellstad.example>", "Featherlite for the Irish shop", "fj-lite")
    lite.set_content(FEATHERLITE_TEXT)
    lite.add_alternative(FEATHERLITE_HTML, subtype="html")
    lite.set_boundary("fj-lite-alternative")  # fixed, so the file is the same on every run
    (HERE / "fjellstad_featherlite.eml").write_bytes(lite.as_bytes())

    parka = _message("Ola Berg <ola@fjellstad.example>", "Winter range: down parka", "fj-down2")
    parka.set_content(DOWN_PARKA_BODY)
    sheet = "\n".join(";".join(row) for row in DOWN_PARKA_SHEET) + "\n"
    parka.add_attachment(
        sheet.encode("utf-8"), maintype="text", subtype="csv", filename="fj-down2-technical.csv"
    )
    parka.set_boundary("fj-down2-mixed")
    (HERE / "fjellstad_down_parka.eml").write_bytes(parka.as_bytes())

    (HERE / "globalgad_offer.txt").write_text(GLOBALGAD_TEXT, encoding="utf-8")


def main() -> None:
    write_csv()
    write_xlsx()
    write_pdfs()
    write_emails()
    for path in sorted(HERE.iterdir()):
        if path.suffix != ".py":
            print(f"{path.name:36} {path.stat().st_size:>7} bytes")


if __name__ == "__main__":
    main()
