"""The HTTP service: a JSON API and the dashboard, one more writer on the store's contract.

Importing this package needs the ``service`` extra (FastAPI, uvicorn); nothing outside it and
``statewise serve`` imports it, so the engine and the command line stay light.
"""

from statewise.service.app import create_app
from statewise.service.context import ServiceContext

__all__ = ["ServiceContext", "create_app"]
