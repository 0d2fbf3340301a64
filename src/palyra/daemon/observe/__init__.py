"""Observability: per-request exchange accounting, metrics and logging."""
