"""Shared fixtures: an isolated token cache and quiet environment per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Point the token cache at a fresh directory and clear token variables."""
    cache = tmp_path_factory.mktemp("pomerium-cache")
    monkeypatch.setenv("POMERIUM_JUPYTER_CACHE_DIR", str(cache))
    for name in (
        "POMERIUM_JUPYTER_TOKEN",
        "POMERIUM_JUPYTER_TOKEN_FILE",
        "POMERIUM_JUPYTER_NONINTERACTIVE",
        "CI",
        "BROWSER",
    ):
        monkeypatch.delenv(name, raising=False)
    yield cache
