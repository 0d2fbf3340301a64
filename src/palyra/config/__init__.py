"""``palyra.toml`` and ``agents.toml``: schema, discovery, env overrides and provenance."""

from palyra.config.agents import AgentConfig, agents_path, load_agents
from palyra.config.discovery import ConfigLocation, discover_config
from palyra.config.loader import LoadedConfig, load_config
from palyra.config.problems import ConfigError, ConfigProblem
from palyra.config.provenance import Source
from palyra.config.schema import PalyraConfig, default_config
from palyra.config.security import is_secret_reference

__all__ = [
    "AgentConfig",
    "ConfigError",
    "ConfigLocation",
    "ConfigProblem",
    "LoadedConfig",
    "PalyraConfig",
    "Source",
    "agents_path",
    "default_config",
    "discover_config",
    "is_secret_reference",
    "load_agents",
    "load_config",
]
