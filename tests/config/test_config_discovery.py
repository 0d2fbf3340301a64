"""Discovery order (--config, $PALYRA_CONFIG, XDG, defaults) and what a missing file means."""

from __future__ import annotations

from pathlib import Path

import pytest

from palyra.config import ConfigError, default_config, load_config

ONE_PROVIDER = """\
[daemon]
bind = "{bind}"
"""


def _write(path: Path, bind: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ONE_PROVIDER.format(bind=bind))
    return path


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: HOME and XDG_CONFIG_HOME in tmp_path, no PALYRA_ variables."""
    import os

    for name in list(os.environ):
        if name.startswith("PALYRA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path


def test_explicit_path_beats_env_and_xdg(homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = _write(homes / "explicit.toml", "127.0.0.1:1")
    monkeypatch.setenv("PALYRA_CONFIG", str(_write(homes / "env.toml", "127.0.0.1:2")))
    _write(homes / "xdg" / "palyra" / "palyra.toml", "127.0.0.1:3")
    loaded = load_config(explicit)
    assert loaded.path == explicit
    assert loaded.location.reason == "from --config"
    assert loaded.config.daemon.bind == "127.0.0.1:1"


def test_palyra_config_env_beats_xdg(homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PALYRA_CONFIG", str(_write(homes / "env.toml", "127.0.0.1:2")))
    _write(homes / "xdg" / "palyra" / "palyra.toml", "127.0.0.1:3")
    loaded = load_config()
    assert loaded.config.daemon.bind == "127.0.0.1:2"
    assert loaded.location.reason == "from $PALYRA_CONFIG"


def test_xdg_config_home_file_is_used_when_nothing_is_named(homes: Path) -> None:
    path = _write(homes / "xdg" / "palyra" / "palyra.toml", "127.0.0.1:3")
    loaded = load_config()
    assert loaded.path == path
    assert loaded.config.daemon.bind == "127.0.0.1:3"
    assert loaded.provenance["daemon.bind"] == f"file:{path}:2"


def test_unset_xdg_config_home_means_home_dot_config(
    homes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    path = _write(homes / "home" / ".config" / "palyra" / "palyra.toml", "127.0.0.1:4")
    assert load_config().path == path


def test_no_file_anywhere_gives_the_built_in_deterministic_defaults(homes: Path) -> None:
    loaded = load_config()
    assert loaded.path is None
    assert loaded.config == default_config()
    assert [p.kind for p in loaded.config.model_provider.providers] == ["deterministic"]
    assert set(loaded.provenance.values()) == {"default"}
    assert "model_provider.models[0].id" in loaded.provenance
    assert "using built-in defaults" in loaded.location.reason


def test_file_without_models_keeps_the_built_in_models(homes: Path) -> None:
    path = _write(homes / "xdg" / "palyra" / "palyra.toml", "127.0.0.1:5")
    loaded = load_config(path)
    assert loaded.config.model_provider.models == default_config().model_provider.models
    assert loaded.provenance["model_provider.providers[0].kind"] == "default"


def test_missing_explicit_file_is_an_error_naming_the_flag(homes: Path) -> None:
    missing = homes / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert str(caught.value) == (
        f"{missing}: file not found; fix the path given to --config, "
        "or drop --config to use discovery"
    )


def test_missing_palyra_config_file_is_an_error_naming_the_variable(
    homes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = homes / "gone.toml"
    monkeypatch.setenv("PALYRA_CONFIG", str(missing))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == (
        f"{missing}: file not found; fix $PALYRA_CONFIG or unset it to use discovery"
    )
