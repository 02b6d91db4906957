"""Firebreak's wiring: settings, the Faust app, the CLI."""

__version__ = "0.1.0"
