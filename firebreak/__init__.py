"""Firebreak's composition root: settings, the CLI, the worker and ingest processes that wire the layers below."""

from schemas import __version__

__all__ = ["__version__"]
