"""``PALYRA_<SECTION>__<KEY>`` overrides: parsing, precedence over the file, provenance, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from palyra.config import ConfigError, load_config
from palyra.config.env_overrides import parse_env_value

FILE = """\
[daemon]
bind = "127.0.0.1:9000"
log_level = "debug"

[model_provider]
max_retries = 5
"""

NO_HOME = {"HOME": "/nonexistent-palyra-home"}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "palyra.toml"
    path.write_text(FILE)
    return path


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("3", 3),
        ("1.5", 1.5),
        ("true", True),
        ('["a", "b"]', ["a", "b"]),
        ('"quoted"', "quoted"),
        ("127.0.0.1:7142", "127.0.0.1:7142"),
        ("env:OPENAI_API_KEY", "env:OPENAI_API_KEY"),
        ("1\nextra = 2", "1\nextra = 2"),
    ],
)
def test_values_are_toml_when_they_parse_else_strings(raw: str, value: object) -> None:
    assert parse_env_value(raw) == value


def test_env_beats_file_and_provenance_names_the_variable(config_file: Path) -> None:
    env = {
        **NO_HOME,
        "PALYRA_DAEMON__BIND": "0.0.0.0:8000",
        "PALYRA_MODEL_PROVIDER__MAX_RETRIES": "1",
        "PALYRA_MODEL_PROVIDER__BREAKER__MIN_REQUESTS": "7",
    }
    loaded = load_config(config_file, env)
    assert loaded.config.daemon.bind == "0.0.0.0:8000"
    assert loaded.config.model_provider.max_retries == 1
    assert loaded.config.model_provider.breaker.min_requests == 7
    assert loaded.provenance["daemon.bind"] == "env:PALYRA_DAEMON__BIND"
    assert loaded.provenance["model_provider.max_retries"] == (
        "env:PALYRA_MODEL_PROVIDER__MAX_RETRIES"
    )
    assert loaded.provenance["model_provider.breaker.min_requests"] == (
        "env:PALYRA_MODEL_PROVIDER__BREAKER__MIN_REQUESTS"
    )
    assert loaded.provenance["daemon.log_level"] == f"file:{config_file}:3"
    assert loaded.provenance["daemon.log_format"] == "default"


def test_unrelated_palyra_variables_are_ignored(config_file: Path) -> None:
    env = {
        **NO_HOME,
        "PALYRA_STATE_DIR": "/tmp/x",
        "PALYRA_VAULT_KEY": "k",
        "PALYRA_VAULT_PASSPHRASE": "p",
        "PALYRA_TEST_POSTGRES_URL": "postgresql://x",
        "PALYRA_CLIENT_TOKEN": "t",
        "OTHER__THING": "1",
    }
    loaded = load_config(config_file, env)
    assert loaded.config.daemon.bind == "127.0.0.1:9000"


def test_unknown_override_names_the_variable_and_suggests_the_key(config_file: Path) -> None:
    env = {**NO_HOME, "PALYRA_DAEMON__BINDD": "x", "PALYRA_NOPE__KEY": "1"}
    with pytest.raises(ConfigError) as caught:
        load_config(config_file, env)
    assert [str(p) for p in caught.value.problems] == [
        'PALYRA_DAEMON__BINDD: daemon.bindd: unknown setting "bindd" in daemon '
        '(did you mean "bind"?); rename or unset the variable',
        'PALYRA_NOPE__KEY: nope.key: unknown setting "nope" in the top level '
        "(known: cron, daemon, limits, model_provider, pricing, responses, storage, usage, version); rename or unset the variable",
    ]


def test_override_into_a_single_value_is_an_error(config_file: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_file, {**NO_HOME, "PALYRA_DAEMON__BIND__HOST": "x"})
    assert str(caught.value) == (
        "PALYRA_DAEMON__BIND__HOST: daemon.bind.host: daemon.bind is a single value, "
        "not a section; rename or unset the variable"
    )


def test_bad_override_value_is_reported_against_the_variable(config_file: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_file, {**NO_HOME, "PALYRA_MODEL_PROVIDER__MAX_RETRIES": "many"})
    assert str(caught.value) == (
        "PALYRA_MODEL_PROVIDER__MAX_RETRIES: model_provider.max_retries: input should be a "
        "valid integer, unable to parse string as an integer; fix the value"
    )
