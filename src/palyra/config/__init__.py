"""``palyra.toml`` and ``agents.toml``: schema, discovery, env overrides and provenance."""
