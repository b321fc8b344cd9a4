"""SVG from Graphviz: DOT text laid out by the ``dot`` program, where it is installed.

The DOT is :func:`statewise.definition.diagrams.to_dot`'s. statewise lays out no graph itself:
the dashboard lays graphs out in the browser (ELK, served from the package), and a standalone
SVG file comes from Graphviz, a maintained layout engine. Without it, the error says how to
install it and what works instead.
"""

from __future__ import annotations

import shutil
import subprocess

from statewise.errors import ExternalProgramError

DOT_SECONDS = 60
"""How long ``dot`` may take; even 100-state workflows take well under a second."""

NO_DOT = (
    "the svg format needs Graphviz's `dot` program, which is not on PATH: install Graphviz "
    "(apt-get install graphviz, or brew install graphviz), or use the mermaid or dot format "
    "(statewise graph --format mermaid|dot), or open the workflow's graph on the dashboard"
)


def dot_to_svg(dot: str) -> str:
    """Lay ``dot`` out with Graphviz and answer the SVG it draws.

    Raises:
        ExternalProgramError: ``dot`` is not installed, or it failed or took too long (the
            message has its own words).

    """
    program = shutil.which("dot")
    if program is None:
        raise ExternalProgramError(NO_DOT)
    try:
        done = subprocess.run(
            [program, "-Tsvg"],
            input=dot.encode("utf-8"),
            capture_output=True,
            timeout=DOT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        why = f"Graphviz's dot took over {DOT_SECONDS} s; nothing drawn"
        raise ExternalProgramError(why) from None
    except OSError as exc:
        raise ExternalProgramError(f"Graphviz's dot at {program} could not run: {exc}") from None
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip() or f"exit status {done.returncode}"
        raise ExternalProgramError(f"Graphviz's dot at {program} failed: {why}")
    return done.stdout.decode("utf-8")
