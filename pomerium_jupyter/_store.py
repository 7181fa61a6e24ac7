"""Token stores: one cache per OS user, shared by every process and kernel.

A token is stored per Pomerium deployment, because Pomerium accepts it on every
route of that deployment. Route origins map to their deployment in small
separate files, so a sign-in through one route serves all the others.

On disk (directory mode 0700, files 0600)::

    <cache>/deployments/<sha256 of deployment key>.json
    <cache>/routes/<sha256 of route origin>.json

Each file is written to a temporary file in the same directory and moved into
place with os.replace, so concurrent writers never leave a torn file and the
last writer wins.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from ._errors import PomeriumError
from ._token import Token

log = logging.getLogger("pomerium_jupyter")

CACHE_DIR_ENV = "POMERIUM_JUPYTER_CACHE_DIR"


def default_cache_dir() -> Path:
    """Return the per-user cache directory, honouring POMERIUM_JUPYTER_CACHE_DIR."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("pomerium_jupyter", appauthor=False))


@dataclass(frozen=True)
class StoredEntry:
    """One signed-in deployment as listed by `TokenStore.entries`."""

    deployment: str
    token: Token
    routes: tuple[str, ...]

    def __repr__(self) -> str:
        return f"StoredEntry(deployment={self.deployment!r}, token={self.token!r})"


class TokenStore:
    """The interface shared by the file store and the memory store."""

    def get(self, deployment: str) -> Token | None:
        raise NotImplementedError

    def put(self, deployment: str, token: Token) -> None:
        raise NotImplementedError

    def delete(self, deployment: str) -> bool:
        raise NotImplementedError

    def deployment_for(self, route_origin: str) -> str | None:
        raise NotImplementedError

    def remember_route(self, route_origin: str, deployment: str) -> None:
        raise NotImplementedError

    def routes_of(self, deployment: str) -> tuple[str, ...]:
        raise NotImplementedError

    def entries(self) -> list[StoredEntry]:
        raise NotImplementedError

    def clear(self) -> None:
        for entry in self.entries():
            self.delete(entry.deployment)


class MemoryTokenStore(TokenStore):
    """A store that lives and dies with the process; nothing touches the disk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}
        self._routes: dict[str, str] = {}

    def get(self, deployment: str) -> Token | None:
        with self._lock:
            return self._tokens.get(deployment)

    def put(self, deployment: str, token: Token) -> None:
        with self._lock:
            self._tokens[deployment] = token

    def delete(self, deployment: str) -> bool:
        with self._lock:
            return self._tokens.pop(deployment, None) is not None

    def deployment_for(self, route_origin: str) -> str | None:
        with self._lock:
            return self._routes.get(route_origin)

    def remember_route(self, route_origin: str, deployment: str) -> None:
        with self._lock:
            self._routes[route_origin] = deployment

    def routes_of(self, deployment: str) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(r for r, d in self._routes.items() if d == deployment))

    def entries(self) -> list[StoredEntry]:
        with self._lock:
            items = sorted(self._tokens.items())
        return [StoredEntry(d, t, self.routes_of(d)) for d, t in items]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


class FileTokenStore(TokenStore):
    """A store in a private directory, shared by all processes of one OS user."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory else default_cache_dir()
        self._warned: set[Path] = set()

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.directory)!r})"

    # Paths and permissions

    def _subdir(self, name: str) -> Path:
        path = self.directory / name
        for folder in (self.directory, path):
            try:
                self._secure_folder(folder)
            except OSError as exc:
                raise PomeriumError(
                    f"Cannot use the token cache directory {str(folder)!r}: "
                    f"{exc.strerror or exc}. Point {CACHE_DIR_ENV} at a directory "
                    "of your own, or remove this path."
                ) from None
        return path

    def _secure_folder(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = folder.stat()
        if hasattr(os, "getuid") and status.st_uid != os.getuid():
            # Its owner could read every token, even after a chmod to 0700.
            raise PermissionError(
                errno.EPERM, f"it belongs to user id {status.st_uid}, not to you"
            )
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            # A directory made by an older version or by hand: tighten it,
            # since every token of the user passes through it.
            os.chmod(folder, 0o700)
            log.warning("Restricted %s to mode 0700 (it was %o).", folder, mode)

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        # The temporary name starts with the target's stem, so delete() can
        # remove copies that a killed writer left behind.
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.stem}-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(data, file)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temp, 0o600)
            os.replace(temp, path)
        except FileNotFoundError:
            # delete() removed the temporary file while it was written: a
            # sign-out raced this write, and the sign-out wins.
            log.info("Not storing %s: it was signed out while being written.", path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn_once(path, f"cannot be read ({exc.strerror})")
            return None
        except UnicodeDecodeError:
            self._warn_once(path, "is not UTF-8 text")
            return None
        try:
            data = json.loads(text)
        except ValueError:
            self._warn_once(path, "is not valid JSON")
            return None
        if not isinstance(data, dict):
            self._warn_once(path, "does not contain a JSON object")
            return None
        return data

    def _warn_once(self, path: Path, problem: str) -> None:
        if path in self._warned:
            return
        self._warned.add(path)
        log.warning(
            "Ignoring token cache entry %s: it %s. It counts as signed out; "
            "the next sign-in replaces it.",
            path,
            problem,
        )

    # Tokens

    def _token_path(self, deployment: str) -> Path:
        return self._subdir("deployments") / f"{_digest(deployment)}.json"

    def get(self, deployment: str) -> Token | None:
        path = self._token_path(deployment)
        data = self._read(path)
        if data is None:
            return None
        return self._token_from(path, data, deployment)

    def _token_from(
        self, path: Path, data: dict[str, Any], deployment: str | None
    ) -> Token | None:
        value = data.get("token")
        obtained = data.get("obtained_at")
        if (
            not isinstance(value, str)
            or not value.strip()
            or not isinstance(obtained, (int, float))
            or (deployment is not None and data.get("deployment") != deployment)
        ):
            self._warn_once(path, "has missing or mismatched fields")
            return None
        source = data.get("source")
        return Token(
            value,
            obtained_at=float(obtained),
            source=source if isinstance(source, str) else "browser",
        )

    def put(self, deployment: str, token: Token) -> None:
        path = self._token_path(deployment)
        self._write(
            path,
            {
                "deployment": deployment,
                "token": token.value,
                "obtained_at": token.obtained_at,
                "source": token.source,
                "written_at": time.time(),
            },
        )
        self._warned.discard(path)

    def delete(self, deployment: str) -> bool:
        path = self._token_path(deployment)
        for leftover in path.parent.glob(f".tmp-{path.stem}-*"):
            leftover.unlink(missing_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def clear(self) -> None:
        super().clear()
        # Temporary copies of tokens whose writer was killed before the rename.
        for leftover in self._subdir("deployments").glob(".tmp-*"):
            leftover.unlink(missing_ok=True)

    # Route to deployment mapping

    def _route_path(self, route_origin: str) -> Path:
        return self._subdir("routes") / f"{_digest(route_origin)}.json"

    def deployment_for(self, route_origin: str) -> str | None:
        data = self._read(self._route_path(route_origin))
        if data is None or data.get("route") != route_origin:
            return None
        deployment = data.get("deployment")
        return deployment if isinstance(deployment, str) else None

    def remember_route(self, route_origin: str, deployment: str) -> None:
        if self.deployment_for(route_origin) == deployment:
            return
        self._write(
            self._route_path(route_origin),
            {"route": route_origin, "deployment": deployment},
        )

    def _route_map(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for path in sorted(self._subdir("routes").glob("*.json")):
            data = self._read(path)
            if data is None:
                continue
            route, deployment = data.get("route"), data.get("deployment")
            if isinstance(route, str) and isinstance(deployment, str):
                mapping[route] = deployment
        return mapping

    def routes_of(self, deployment: str) -> tuple[str, ...]:
        return tuple(sorted(r for r, d in self._route_map().items() if d == deployment))

    def entries(self) -> list[StoredEntry]:
        routes = self._route_map()
        result = []
        for path in sorted(self._subdir("deployments").glob("*.json")):
            data = self._read(path)
            if data is None or not isinstance(data.get("deployment"), str):
                continue
            deployment = data["deployment"]
            token = self._token_from(path, data, deployment)
            if token is None:
                continue
            owned = tuple(sorted(r for r, d in routes.items() if d == deployment))
            result.append(StoredEntry(deployment, token, owned))
        return sorted(result, key=lambda entry: entry.deployment)
