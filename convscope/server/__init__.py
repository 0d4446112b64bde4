"""The explorer's web server: the page at ``/`` and the JSON API of docs/api.md under ``/api``."""

from .app import create_app

__all__ = ["create_app"]
