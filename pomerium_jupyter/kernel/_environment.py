"""Detection of the kernel's frontend and of whether a human can sign in there."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Literal

from .._auth import NONINTERACTIVE_ENV, is_interactive

Frontend = Literal["terminal", "vscode", "jupyter"]
FrontendMethod = Literal["widget", "paste"]

_TRUE = {"1", "true", "yes", "on"}
VSCODE_ENV = ("VSCODE_PID", "VSCODE_CWD")


def current_shell() -> Any:
    """Return the running IPython shell, or None outside IPython."""
    from IPython.core import getipython

    get_ipython: Callable[[], Any] = getipython.get_ipython
    return get_ipython()


def current_kernel() -> Any:
    """Return the ipykernel kernel of this process, or None without one."""
    shell = current_shell()
    return getattr(shell, "kernel", None) if shell is not None else None


def detect_frontend() -> Frontend:
    """Guess who talks to this process.

    "terminal" means IPython without a kernel, where a blocking loopback
    sign-in that prints its URL is right. "vscode" is a kernel started by VS
    Code, which talks to the kernel directly with no Jupyter server, so the
    loopback listener in the kernel is the callback. "jupyter" is any other
    kernel; the widget's script then finds out whether the Jupyter server has
    the pomerium_jupyter extension.
    """
    if current_kernel() is None:
        return "terminal"
    if any(os.environ.get(name) for name in VSCODE_ENV):
        return "vscode"
    return "jupyter"


def env_forbids_prompts() -> bool:
    """Tell whether CI or POMERIUM_JUPYTER_NONINTERACTIVE is set to a true value."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in (NONINTERACTIVE_ENV, "CI")
    )


def can_prompt() -> bool:
    """Guess whether a human can finish a browser sign-in for the running code.

    In a kernel, the `allow_stdin` flag of the current execute request is the
    signal: nbclient and papermill send it false because nobody watches their
    runs. Outside a kernel the core's terminal check applies.
    """
    if env_forbids_prompts():
        return False
    kernel = current_kernel()
    if kernel is None:
        return is_interactive()
    try:
        parent = kernel.get_parent("shell")
    except (AttributeError, TypeError):
        parent = None
    content = parent.get("content") if isinstance(parent, dict) else None
    if isinstance(content, dict) and "allow_stdin" in content:
        return bool(content["allow_stdin"])
    return bool(getattr(kernel, "_allow_stdin", False))


class FrontendReport:
    """What the widget's script found out about the browser side.

    The script reports once per displayed widget whether the Jupyter server
    answered on the extension's status endpoint. A sign-in that starts later
    inside a busy cell uses the latest report, because a busy kernel cannot
    ask the browser.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._method: FrontendMethod | None = None

    @property
    def method(self) -> FrontendMethod | None:
        with self._lock:
            return self._method

    def record(self, method: FrontendMethod) -> None:
        with self._lock:
            self._method = method

    def reset(self) -> None:
        with self._lock:
            self._method = None


frontend_report = FrontendReport()
