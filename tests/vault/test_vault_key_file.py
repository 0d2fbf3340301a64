"""The key file is read like ssh reads a private key: no links, no devices, owner-only, small.

Every case runs the real resolver on real files in a subprocess with a timeout and a memory
limit, so a reader that follows a link to ``/dev/zero`` or waits on a FIFO fails the test
instead of hanging it or eating the machine's memory.
"""

from __future__ import annotations

import base64
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from vault_helpers import new_key_b64, resolver

from palyra.vault import KeyFile, VaultKeyError

RESOLVE = """
import sys
from pathlib import Path
from palyra.vault import KeyResolver, VaultError
try:
    key = KeyResolver(Path(sys.argv[1]), environ={}).resolve(None)
except VaultError as exc:
    print("refused:", exc.envelope.message)
else:
    print("used:", key.where)
"""
TIMEOUT_S = 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def resolve_in_subprocess(state: Path) -> str:
    """What resolving the key of ``state`` printed; a hang fails the test after the timeout."""
    done = subprocess.run(
        [sys.executable, "-c", RESOLVE, str(state)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        preexec_fn=_limit_memory,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_symlinked_key_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "real.key"
    target.write_text(new_key_b64() + "\n")
    target.chmod(0o640)
    before = target.read_bytes()
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "vault.key").symlink_to(target)
    said = resolve_in_subprocess(state)
    assert said.startswith("refused:"), said
    assert f"the vault key file {state}/vault.key is a symbolic link" in said
    assert "PALYRA_VAULT_KEY" in said
    assert (_mode(target), target.read_bytes()) == (0o640, before)
    assert (state / "vault.key").is_symlink()


def test_a_key_file_linked_to_dev_zero_is_refused_without_changing_dev_zero(
    tmp_path: Path,
) -> None:
    mode_before = _mode(Path("/dev/zero"))
    (tmp_path / "vault.key").symlink_to("/dev/zero")
    said = resolve_in_subprocess(tmp_path)
    assert "is a symbolic link" in said, said
    assert _mode(Path("/dev/zero")) == mode_before


def test_a_fifo_as_key_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "vault.key"
    os.mkfifo(fifo, 0o600)
    said = resolve_in_subprocess(tmp_path)  # opening it for reading waits for a writer
    assert said.startswith("refused:"), said
    assert f"the vault key file {fifo} is not a regular file (it is a FIFO)" in said
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and _mode(fifo) == 0o600


def test_an_endless_sparse_key_file_is_refused_after_a_bounded_read(tmp_path: Path) -> None:
    huge = tmp_path / "vault.key"
    fd = os.open(huge, os.O_WRONLY | os.O_CREAT, 0o600)
    os.ftruncate(fd, 8 << 30)  # 8 GiB of zeros, no disk used
    os.close(fd)
    said = resolve_in_subprocess(tmp_path)
    assert said.startswith("refused:"), said
    assert "is larger than 1024 bytes, so it is not a vault key" in said
    assert huge.stat().st_size == 8 << 30


def test_a_key_file_readable_by_others_is_refused_with_the_chmod_fix(tmp_path: Path) -> None:
    created = KeyFile(tmp_path / "vault.key").create()
    path = tmp_path / "vault.key"
    path.chmod(0o644)
    before = path.read_bytes()
    with pytest.raises(VaultKeyError) as err:
        resolver(tmp_path).resolve(created.record())
    message = str(err.value)
    assert f"the vault key file {path} has mode 644" in message
    assert f"chmod 600 {path}" in message
    assert "palyra vault rotate-key" in message
    assert before.decode().strip() not in message
    assert (_mode(path), path.read_bytes()) == (0o644, before)
    path.chmod(0o600)
    assert resolver(tmp_path).resolve(created.record()).key == created.key


def test_a_group_readable_key_file_is_refused_too(tmp_path: Path) -> None:
    KeyFile(tmp_path / "vault.key").create()
    (tmp_path / "vault.key").chmod(0o640)
    with pytest.raises(VaultKeyError, match="has mode 640"):
        resolver(tmp_path).resolve(None)
    assert _mode(tmp_path / "vault.key") == 0o640


def test_a_directory_as_key_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "vault.key").mkdir(mode=0o700)
    with pytest.raises(VaultKeyError, match=r"is not a regular file \(it is a directory\)"):
        resolver(tmp_path).resolve(None)


def test_a_set_env_key_that_is_not_the_vaults_key_is_an_error_not_skipped(
    tmp_path: Path,
) -> None:
    file_key = KeyFile(tmp_path / "vault.key").create()
    wrong = new_key_b64()
    with pytest.raises(VaultKeyError) as err:
        resolver(tmp_path, PALYRA_VAULT_KEY=wrong).resolve(file_key.record())
    message = str(err.value)
    assert "PALYRA_VAULT_KEY is set, but it is not the master key" in message
    assert f"the vault's key has id {file_key.key_id}, from the key file" in message
    assert "or unset it to use the key file" in message
    assert wrong not in message
    assert base64.b64encode(file_key.key).decode() not in message
    right = base64.b64encode(file_key.key).decode()
    assert resolver(tmp_path, PALYRA_VAULT_KEY=right).resolve(file_key.record()).source == "env"
