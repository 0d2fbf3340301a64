"""``load_config``: discover, parse, apply env overrides, validate everything, record provenance."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from palyra.config.daemon_rules import check_daemon
from palyra.config.discovery import CONFIG_ENV_VAR, ConfigLocation, discover_config
from palyra.config.document import MP
from palyra.config.env_overrides import (
    EnvOverride,
    apply_overrides,
    override_for,
    parse_env_overrides,
)
from palyra.config.group_rules import check_groups
from palyra.config.limits_rules import check_limits
from palyra.config.locate import KeyLines
from palyra.config.pricing_rules import check_pricing
from palyra.config.problems import ConfigError, ConfigProblem, Finding, KeyPath, format_path
from palyra.config.provenance import Source, compute_provenance
from palyra.config.provider_rules import check_providers
from palyra.config.references import DEFAULT_KEYS, check_references
from palyra.config.schema import PalyraConfig, default_config
from palyra.config.schema_check import check_schema
from palyra.config.security import check_security
from palyra.config.storage_rules import check_storage

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
MAX_NESTING = 32
"""How deep tables and arrays may nest; palyra.toml itself needs about five levels."""


def too_deep(document: Any, limit: int = MAX_NESTING) -> KeyPath | None:
    """The path to the first value nested more than ``limit`` levels deep, else ``None``.
    Iterative, so a hostile file cannot exhaust the stack here either."""
    stack: list[tuple[Any, KeyPath]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > limit:
            return path
        if isinstance(value, dict):
            stack.extend((item, (*path, str(key))) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
    return None


def _nesting_problem(label: str, key: str | None) -> ConfigProblem:
    return ConfigProblem(
        label,
        None,
        key,
        f"tables or arrays are nested more than {MAX_NESTING} levels deep; no setting needs "
        "that, so flatten or remove this value",
    )


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A valid config plus where it came from, value by value."""

    config: PalyraConfig
    path: Path | None
    provenance: dict[str, Source]
    location: ConfigLocation


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A TOML file read and parsed, with its key lines for error messages."""

    label: str
    document: dict[str, Any]
    lines: KeyLines


def parse_toml_file(path: Path, *, missing_hint: str) -> ParsedFile:
    """Read and parse one TOML file or raise ``ConfigError`` saying where it failed."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [ConfigProblem(label, None, None, f"file not found; {missing_hint}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            [ConfigProblem(label, None, None, "file is not UTF-8 text; save it as UTF-8")]
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            [
                ConfigProblem(
                    label,
                    None,
                    None,
                    f"cannot read the file ({reason}); check the path and permissions",
                )
            ]
        ) from None
    try:
        document = tomllib.loads(text)
    except RecursionError:
        raise ConfigError([_nesting_problem(label, None)]) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line = int(match.group(1)) if match else None
        detail = message[: match.start()] if match else message
        column = f" at column {match.group(2)}" if match else ""
        raise ConfigError(
            [
                ConfigProblem(
                    label, line, None, f"TOML syntax error{column}: {detail}; fix the syntax"
                )
            ]
        ) from None
    deep = too_deep(document)
    if deep is not None:
        raise ConfigError([_nesting_problem(label, format_path(deep[:3]) + "...")])
    return ParsedFile(label, document, KeyLines(text))


def place_findings(
    findings: list[Finding],
    parsed: ParsedFile | None,
    overrides: list[EnvOverride],
    fallback_label: str,
) -> list[ConfigProblem]:
    """Attach file and line to each finding: the env variable that set it, else the file line."""
    problems = []
    for finding in findings:
        key = format_path(finding.path) or None
        override = override_for(finding.path, overrides)
        if override is not None:
            problems.append(ConfigProblem(override.variable, None, key, finding.message))
        elif parsed is not None:
            line = parsed.lines.line_of(finding.path)
            problems.append(ConfigProblem(parsed.label, line, key, finding.message))
        else:
            problems.append(ConfigProblem(fallback_label, None, key, finding.message))
    return problems


def _missing_hint(location: ConfigLocation) -> str:
    if location.reason == "from --config":
        return "fix the path given to --config, or drop --config to use discovery"
    return f"fix ${CONFIG_ENV_VAR} or unset it to use discovery"


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Load the effective config, or raise ``ConfigError`` listing every problem found."""
    environ: Mapping[str, str] = os.environ if env is None else env
    location = discover_config(path, environ)
    overrides, env_problems = parse_env_overrides(environ)
    parsed: ParsedFile | None = None
    if location.path is not None:
        try:
            parsed = parse_toml_file(location.path, missing_hint=_missing_hint(location))
        except ConfigError as exc:
            raise ConfigError([*exc.problems, *env_problems]) from None
    document = parsed.document if parsed else {}
    for override in overrides:
        if too_deep(override.value, MAX_NESTING - len(override.path)) is not None:
            key = format_path(override.path)
            raise ConfigError([_nesting_problem(override.variable, key)])
    merged = apply_overrides(document, overrides)
    mp = merged.get(MP)
    user_mp: dict[str, Any] = dict(mp) if isinstance(mp, dict) else {}
    user_set_registry = "providers" in user_mp or "models" in user_mp
    if not user_set_registry and (mp is None or isinstance(mp, dict)):
        builtin = default_config().model_provider.model_dump(include={"providers", "models"})
        merged = {**merged, MP: {**user_mp, **builtin}}

    config, findings = check_schema(PalyraConfig, merged)
    # Defaults the user set are checked; the chat default also whenever the user set models,
    # so a chat-only config needs no dummy embeddings or transcription model.
    checked = {key for key, _, _ in DEFAULT_KEYS if key in user_mp}
    if "models" in user_mp:
        checked.add("default_chat_model")
    findings += check_references(merged, checked_defaults=checked)
    findings += check_security(merged)
    findings += check_providers(merged)
    findings += check_groups(merged)
    findings += check_storage(merged)
    findings += check_daemon(merged)
    findings += check_pricing(merged)
    findings += check_limits(merged)
    problems = env_problems + place_findings(findings, parsed, overrides, "built-in defaults")
    if problems or config is None:
        problems.sort(key=lambda p: (p.file != (parsed.label if parsed else None), p.line or 0))
        raise ConfigError(problems)
    provenance = compute_provenance(
        config.model_dump(mode="json"),
        document,
        parsed.lines if parsed else None,
        parsed.label if parsed else None,
        overrides,
    )
    return LoadedConfig(config, location.path, provenance, location)
