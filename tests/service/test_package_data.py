"""What the dashboard serves is shipped: every template and static file, the vendored layout
engine included, is matched by the wheel's package data."""

from __future__ import annotations

import fnmatch
import tomllib
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_template_and_static_file_is_package_data() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["statewise"]
    package = resources.files("statewise")
    service = Path(str(package / "service"))
    shipped = [
        path.relative_to(service.parent).as_posix()
        for folder in ("templates", "static")
        for path in sorted((service / folder).rglob("*"))
        if path.is_file()
    ]
    assert "service/static/vendor/elkjs/elk.bundled.js" in shipped
    assert "service/static/vendor/elkjs/LICENSE.md" in shipped
    # setuptools matches each pattern against paths inside the package, "*" within one folder.
    missed = [
        name
        for name in shipped
        if not any(fnmatch.fnmatch(name, p) and name.count("/") == p.count("/") for p in patterns)
    ]
    assert missed == []
