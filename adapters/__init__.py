"""Adapters: the stores and clients the stages and executors use (Redis, Kafka gaps, Faust table entries,
metrics, logs, YAML files, secrets, signed links).

Layer three of five (docs/architecture.md): adapters import `schemas/` and `correlation/`, never `ingest/`,
`actions/`, `stream/` or `firebreak/`.
"""
