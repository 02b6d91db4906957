"""Runbook step kinds: one module per action (http, command, notify, approval, wait, annotate,
resolve_incident), each with its `run`, `describe` and `lint`, chosen by the step's action in registry.py."""
