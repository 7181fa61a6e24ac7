"""Token stores: permissions, atomic writes, corrupt entries, isolation."""

import json
import logging
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from pomerium_jupyter import FileTokenStore, MemoryTokenStore, Token, TokenStore

DEPLOYMENT_A = "https://authenticate.a.example#idp=a"
DEPLOYMENT_B = "https://authenticate.b.example#idp=b"


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TokenStore:
    if request.param == "file":
        return FileTokenStore(tmp_path / "cache")
    return MemoryTokenStore()


def test_put_get_delete(store: TokenStore) -> None:
    token = Token("secret-a")
    store.put(DEPLOYMENT_A, token)
    assert store.get(DEPLOYMENT_A) == token
    assert store.delete(DEPLOYMENT_A) is True
    assert store.get(DEPLOYMENT_A) is None
    assert store.delete(DEPLOYMENT_A) is False


def test_deployments_isolated(store: TokenStore) -> None:
    store.put(DEPLOYMENT_A, Token("secret-a"))
    assert store.get(DEPLOYMENT_B) is None
    store.put(DEPLOYMENT_B, Token("secret-b"))
    stored_a = store.get(DEPLOYMENT_A)
    stored_b = store.get(DEPLOYMENT_B)
    assert stored_a is not None and stored_a.value == "secret-a"
    assert stored_b is not None and stored_b.value == "secret-b"


def test_routes_map_to_deployment(store: TokenStore) -> None:
    store.remember_route("https://app.a.example", DEPLOYMENT_A)
    store.remember_route("https://api.a.example", DEPLOYMENT_A)
    store.remember_route("https://app.b.example", DEPLOYMENT_B)
    assert store.deployment_for("https://api.a.example") == DEPLOYMENT_A
    assert store.deployment_for("https://unknown.example") is None
    assert store.routes_of(DEPLOYMENT_A) == (
        "https://api.a.example",
        "https://app.a.example",
    )


def test_entries_and_clear(store: TokenStore) -> None:
    store.put(DEPLOYMENT_A, Token("secret-a"))
    store.put(DEPLOYMENT_B, Token("secret-b"))
    store.remember_route("https://app.a.example", DEPLOYMENT_A)
    entries = store.entries()
    assert [e.deployment for e in entries] == [DEPLOYMENT_A, DEPLOYMENT_B]
    assert entries[0].routes == ("https://app.a.example",)
    assert "secret-a" not in repr(entries[0])
    store.clear()
    assert store.entries() == []


def test_file_modes(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "cache")
    store.put(DEPLOYMENT_A, Token("secret-a"))
    store.remember_route("https://app.a.example", DEPLOYMENT_A)
    root = tmp_path / "cache"
    for folder in (root, root / "deployments", root / "routes"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    files = list(root.rglob("*.json"))
    assert len(files) == 2
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_loose_directory_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "cache"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    store = FileTokenStore(root)
    store.put(DEPLOYMENT_A, Token("secret-a"))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert "mode 0700" in caplog.text


def test_default_directory_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POMERIUM_JUPYTER_CACHE_DIR", str(tmp_path / "env-cache"))
    store = FileTokenStore()
    store.put(DEPLOYMENT_A, Token("secret-a"))
    assert (tmp_path / "env-cache" / "deployments").is_dir()


def test_shared_between_instances(tmp_path: Path) -> None:
    FileTokenStore(tmp_path).put(DEPLOYMENT_A, Token("secret-a"))
    stored = FileTokenStore(tmp_path).get(DEPLOYMENT_A)
    assert stored is not None
    assert stored.value == "secret-a"


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"deployment": "x"}', b"\xff\xfe", b""],
    ids=["truncated", "list", "fields", "binary", "empty"],
)
def test_corrupt_entry_is_absent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    store = FileTokenStore(tmp_path)
    store.put(DEPLOYMENT_A, Token("secret-a"))
    (path,) = (tmp_path / "deployments").glob("*.json")
    path.write_bytes(content)
    caplog.set_level(logging.WARNING, "pomerium_jupyter")
    assert store.get(DEPLOYMENT_A) is None
    assert store.get(DEPLOYMENT_A) is None
    warnings = [r for r in caplog.records if "Ignoring token cache entry" in r.message]
    assert len(warnings) == 1
    assert store.entries() == []
    store.put(DEPLOYMENT_A, Token("secret-new"))
    fresh = store.get(DEPLOYMENT_A)
    assert fresh is not None and fresh.value == "secret-new"


def test_unreadable_entry_is_absent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() == 0:
        # Root reads any file, so make the entry a directory instead.
        store = FileTokenStore(tmp_path)
        store.put(DEPLOYMENT_A, Token("secret-a"))
        (path,) = (tmp_path / "deployments").glob("*.json")
        path.unlink()
        path.mkdir()
    else:
        store = FileTokenStore(tmp_path)
        store.put(DEPLOYMENT_A, Token("secret-a"))
        (path,) = (tmp_path / "deployments").glob("*.json")
        path.chmod(0)
    assert store.get(DEPLOYMENT_A) is None
    assert "cannot be read" in caplog.text


def test_entry_for_other_deployment_ignored(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path)
    store.put(DEPLOYMENT_A, Token("secret-a"))
    (path,) = (tmp_path / "deployments").glob("*.json")
    data = json.loads(path.read_text())
    data["deployment"] = DEPLOYMENT_B
    path.write_text(json.dumps(data))
    assert store.get(DEPLOYMENT_A) is None


def _write_many(directory: str, worker: int, rounds: int) -> None:
    store = FileTokenStore(directory)
    for round_number in range(rounds):
        store.put(DEPLOYMENT_A, Token(f"token-{worker}-{round_number}"))
        store.remember_route(f"https://route{worker % 5}.example", DEPLOYMENT_A)
        stored = store.get(DEPLOYMENT_A)
        assert stored is not None
        assert stored.value.startswith("token-")


def test_concurrent_writers_leave_valid_file(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_write_many, args=(str(tmp_path), n, 20))
        for n in range(50)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0] * 50
    files = list((tmp_path / "deployments").iterdir())
    assert len(files) == 1, "temporary files were left behind"
    data = json.loads(files[0].read_text())
    assert data["token"].startswith("token-")
    assert data["token"].endswith("-19")
    assert len(FileTokenStore(tmp_path).routes_of(DEPLOYMENT_A)) == 5


def test_sign_out_during_write_wins(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path)
    store.put(DEPLOYMENT_A, Token("secret-old"))
    real_fsync = os.fsync

    def fsync_then_sign_out(fd: int) -> None:
        real_fsync(fd)
        store.delete(DEPLOYMENT_A)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", fsync_then_sign_out)
        store.put(DEPLOYMENT_A, Token("secret-new"))
    assert store.get(DEPLOYMENT_A) is None
    assert list((tmp_path / "deployments").iterdir()) == []
