// @ts-check
// The login widget's view: a plain ES module loaded by anywidget.
//
// The popup sign-in runs entirely between this page and the Jupyter server's
// pomerium_jupyter extension: the click opens {base}pomerium/start, which
// redirects to Pomerium, and the extension's callback stores the token in the
// token store that the kernel reads. This view only polls the extension for
// the outcome, so it works while the kernel is busy in another cell. The
// token never passes through this file.

/**
 * @typedef {"signed-out" | "pending" | "signed-in" | "error"} Status
 * @typedef {"auto" | "widget" | "loopback" | "paste"} Method
 * @typedef {{
 *   get(name: string): any,
 *   on(event: string, callback: (...args: any[]) => void): void,
 *   off(event: string, callback: (...args: any[]) => void): void,
 *   send(content: object): void,
 * }} Model
 * @typedef {{
 *   requestId: string,
 *   url: string,
 *   popup: Window | null,
 *   openedAt: number,
 *   deadline: number,
 *   closedPolls: number,
 *   known: boolean,
 *   timer: number | undefined,
 *   finished: boolean,
 * }} Flow
 * @typedef {{
 *   status: "pending" | "done" | "error" | "expired",
 *   message: string | null,
 *   user: string | null,
 *   expires_in?: number,
 * }} RequestState
 */

const CHANNEL_NAME = "pomerium_jupyter";
// The server extension drops a flow after 360 s, the life of Pomerium's
// signed sign-in URL (5 minutes plus 1 minute of leeway).
const FLOW_LIFE_MS = 360_000;
const POLL_MS = 1000;
// The server rounds expires_in to whole seconds and reports "expired" itself
// once the flow's life is over, so the widget's own deadline waits a little
// longer and applies only while the server cannot be reached.
const DEADLINE_GRACE_MS = 3 * POLL_MS;
// Identity providers that send Cross-Origin-Opener-Policy make popup.closed
// read true while the popup is still open, so a closed popup is reported only
// after this grace period and several pending polls in a row. Polling goes on
// after the notice, so a sign-in that still finishes is picked up.
const CLOSED_GRACE_MS = 4000;
const CLOSED_POLLS = 3;
const CLOSED_MESSAGE =
  "The sign-in window was closed before the sign-in finished.";
const FORGOTTEN_MESSAGE =
  "The Jupyter server no longer knows this sign-in, for example because it " +
  "restarted. Click Try again to start a new one.";

/** @returns {string | null} the Jupyter server's base URL, ending with "/" */
function jupyterBaseUrl() {
  const element = document.getElementById("jupyter-config-data");
  if (!element || !element.textContent) return null;
  try {
    const config = JSON.parse(element.textContent);
    const base = typeof config.baseUrl === "string" ? config.baseUrl : null;
    if (base === null) return null;
    return base.endsWith("/") ? base : `${base}/`;
  } catch {
    return null;
  }
}

/** @returns {string} the value of the _xsrf cookie, or "" */
function xsrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
  return match ? match[1] : "";
}

/**
 * Call the server extension the way JupyterLab's own requests do: with the
 * login cookie and the XSRF header on every method, GET included, because
 * JupyterHub >= 4.1 treats cookie requests without it as anonymous.
 * @param {string} url
 * @param {RequestInit} [init]
 */
function callServer(url, init = {}) {
  return fetch(url, {
    ...init,
    credentials: "same-origin",
    cache: "no-store",
    headers: {
      "X-XSRFToken": xsrfToken(),
      "Content-Type": "application/json",
      ...(init.headers || {}),
    },
  });
}

/** @returns {string} a random id for one sign-in request */
function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * @param {string} tag
 * @param {string} role value of the data-pomerium attribute
 * @param {string} [text]
 * @returns {HTMLElement}
 */
function element(tag, role, text) {
  const node = document.createElement(tag);
  node.dataset.pomerium = role;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * @param {HTMLElement} node
 * @param {boolean} visible
 */
function setVisible(node, visible) {
  node.style.display = visible ? "" : "none";
}

/** @param {{ model: Model, el: HTMLElement }} context */
function render({ model, el }) {
  const base = jupyterBaseUrl();
  const root = element("div", "widget");
  root.className = "pomerium-login";
  root.style.display = "flex";
  root.style.flexDirection = "column";
  root.style.gap = "0.4em";
  root.style.alignItems = "flex-start";

  const statusLine = element("div", "status");
  // Messages can hold a line for an administrator to copy, such as the host
  // for Pomerium's redirect allow list, so line breaks are kept.
  statusLine.style.whiteSpace = "pre-wrap";
  const methodLine = element("div", "method");
  methodLine.style.opacity = "0.7";
  methodLine.style.fontSize = "smaller";
  const signIn = /** @type {HTMLButtonElement} */ (element("button", "sign-in"));
  const link = /** @type {HTMLAnchorElement} */ (
    element("a", "link", "Open the sign-in page")
  );
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  const pasteRow = element("div", "paste");
  const pasteInput = /** @type {HTMLInputElement} */ (
    element("input", "paste-input")
  );
  pasteInput.type = "text";
  pasteInput.placeholder = "Address after sign-in";
  pasteInput.autocomplete = "off";
  pasteInput.spellcheck = false;
  pasteInput.style.minWidth = "30em";
  const pasteSubmit = element("button", "paste-submit", "Finish sign-in");
  pasteRow.append(pasteInput, " ", pasteSubmit);
  const retry = element("button", "retry", "Try again");
  const signOut = element("button", "sign-out", "Sign out");
  root.append(statusLine, signIn, link, pasteRow, retry, signOut, methodLine);
  el.append(root);

  /** @type {Method} */
  let method = model.get("method");
  /** @type {Flow | null} */
  let flow = null;
  /** @type {"idle" | "waiting" | "failed" | "done" | "pasting"} */
  let phase = "idle";
  let localMessage = "";
  /** @type {string | null} */
  let localUser = null;
  let pasteUrl = "";
  let disposed = false;

  const channel =
    typeof BroadcastChannel === "function"
      ? new BroadcastChannel(CHANNEL_NAME)
      : null;
  if (channel) {
    channel.onmessage = (event) => {
      const data = event.data;
      // The callback page posts {request, status}; a match means the
      // server has an outcome now, so poll at once instead of waiting.
      if (flow && data && data.request === flow.requestId) void poll();
    };
  }

  function describeMethod() {
    switch (method) {
      case "widget":
        return "Sign-in method: a popup through this Jupyter server.";
      case "paste":
        return "Sign-in method: paste the address after sign-in back here.";
      case "loopback":
        return "Sign-in method: a listener in the kernel on 127.0.0.1.";
      default:
        return "Checking this Jupyter server for the pomerium_jupyter extension.";
    }
  }

  function stopFlow() {
    if (flow) {
      flow.finished = true;
      window.clearInterval(flow.timer);
    }
  }

  function update() {
    const status = /** @type {Status} */ (model.get("status"));
    const host = model.get("host");
    const user = model.get("user") || localUser;
    signIn.textContent = `Sign in to ${host}`;
    methodLine.textContent = describeMethod();
    const signedIn = status === "signed-in" || phase === "done";
    const closedNotice =
      phase === "waiting" && flow !== null && flow.closedPolls >= CLOSED_POLLS &&
      Date.now() - flow.openedAt >= CLOSED_GRACE_MS;

    if (signedIn) {
      statusLine.textContent = user ? `Signed in as ${user}` : "Signed in";
    } else if (closedNotice) {
      statusLine.textContent = CLOSED_MESSAGE;
    } else if (phase === "waiting" && flow) {
      const left = Math.max(0, Math.round((flow.deadline - Date.now()) / 1000));
      statusLine.textContent =
        `Waiting for the sign-in to finish in the other window (${left} s left).`;
    } else if (phase === "failed") {
      statusLine.textContent = localMessage;
    } else if (phase === "pasting") {
      statusLine.textContent = model.get("message") || "Loading the sign-in page.";
    } else {
      statusLine.textContent = model.get("message") || `Not signed in to ${host}.`;
    }

    const popupBlocked = phase === "waiting" && flow !== null && flow.popup === null;
    setVisible(signIn, !signedIn && phase === "idle");
    // Until the check for the server extension finishes, a click could not
    // tell which sign-in to start.
    signIn.disabled = method === "auto";
    setVisible(
      link,
      !signedIn && ((popupBlocked && !closedNotice) || (phase === "pasting" && pasteUrl !== "")),
    );
    if (phase === "pasting") link.href = pasteUrl;
    else if (flow) link.href = flow.url;
    setVisible(pasteRow, !signedIn && phase === "pasting" && pasteUrl !== "");
    setVisible(retry, !signedIn && (phase === "failed" || closedNotice));
    setVisible(signOut, signedIn);
  }

  /** @param {string} message */
  function fail(message) {
    stopFlow();
    phase = "failed";
    localMessage = message;
    update();
  }

  /** @param {string | null} user */
  function finish(user) {
    stopFlow();
    phase = "done";
    localUser = user;
    model.send({ event: "signed-in" });
    update();
  }

  async function poll() {
    const current = flow;
    if (!current || current.finished || base === null) return;
    const url = `${base}pomerium/api/requests/${encodeURIComponent(current.requestId)}`;
    /** @type {RequestState | null} */
    let state = null;
    let forgotten = false;
    try {
      const response = await callServer(url);
      if (response.ok) {
        state = await response.json();
      } else if (response.status === 404) {
        forgotten = current.known;
      } else if (response.status === 403) {
        fail(
          "The Jupyter server rejected the status request (403). Reload the " +
            "page, sign in to Jupyter again, and retry.",
        );
        return;
      }
      // Before the first state, a 404 means the popup has not reached
      // pomerium/start yet.
    } catch {
      // A dropped request is retried on the next tick.
    }
    if (current !== flow || current.finished || disposed) return;
    // The server returned this flow's state before, so a 404 now means it
    // lost the flow, as a restarted server does.
    if (forgotten) return fail(FORGOTTEN_MESSAGE);
    if (state) {
      current.known = true;
      if (state.status === "done") return finish(state.user);
      if (state.status === "error") {
        return fail(state.message || "The sign-in failed; try again.");
      }
      if (state.status === "expired") {
        return fail(
          state.message || "The sign-in expired before it finished; try again.",
        );
      }
      if (typeof state.expires_in === "number") {
        current.deadline = Date.now() + state.expires_in * 1000;
      }
    }
    if (Date.now() >= current.deadline + DEADLINE_GRACE_MS) {
      return fail("The sign-in expired before it finished; try again.");
    }
    if (current.popup && current.popup.closed) current.closedPolls += 1;
    else current.closedPolls = 0;
    update();
  }

  // Runs synchronously inside the click handler: a popup opened after an
  // await has lost the click's user activation and gets blocked.
  function startPopupFlow() {
    if (base === null) {
      fail(
        "This page has no Jupyter server configuration, so the popup sign-in " +
          "cannot run; use %pomerium login URL --method paste.",
      );
      return;
    }
    stopFlow();
    const requestId = randomId();
    const query = new URLSearchParams({
      route: model.get("route"),
      origin: window.location.origin,
      request: requestId,
      _xsrf: xsrfToken(),
    });
    const url = `${base}pomerium/start?${query}`;
    const popup = window.open(url, "_blank", "popup,width=520,height=720");
    flow = {
      requestId,
      url,
      popup,
      openedAt: Date.now(),
      deadline: Date.now() + FLOW_LIFE_MS,
      closedPolls: 0,
      known: false,
      timer: undefined,
      finished: false,
    };
    flow.timer = window.setInterval(() => void poll(), POLL_MS);
    phase = "waiting";
    update();
  }

  function startPaste() {
    stopFlow();
    phase = "pasting";
    pasteUrl = "";
    model.send({ event: "paste-start" });
    update();
  }

  function onSignIn() {
    if (method === "paste") startPaste();
    else startPopupFlow();
  }

  function submitPaste() {
    const address = pasteInput.value.trim();
    if (!address) return;
    // The pasted address contains the token: it goes to the kernel once and
    // leaves the page.
    pasteInput.value = "";
    model.send({ event: "paste", address });
  }

  async function onSignOut() {
    stopFlow();
    if (base !== null && method === "widget") {
      try {
        await callServer(`${base}pomerium/api/logout`, {
          method: "POST",
          body: JSON.stringify({ route: model.get("route") }),
        });
      } catch {
        // The kernel still drops its copy below.
      }
    }
    phase = "idle";
    localUser = null;
    model.send({ event: "signed-out" });
    update();
  }

  /** @param {any} content */
  function onCustomMessage(content) {
    if (content && content.event === "sign-in-url" && phase === "pasting") {
      pasteUrl = String(content.url);
      update();
    }
  }

  function onStatusChange() {
    if (model.get("status") === "signed-in") {
      stopFlow();
      pasteUrl = "";
      link.removeAttribute("href");
      if (phase !== "done") phase = "idle";
    } else if (phase === "done") {
      phase = "idle";
    } else if (phase === "pasting" && model.get("status") === "error") {
      phase = "failed";
      localMessage = model.get("message");
    }
    update();
  }

  function onMethodChange() {
    method = model.get("method");
    update();
  }

  async function detectServerExtension() {
    if (method !== "auto" && method !== "widget") return;
    let available = false;
    if (base !== null) {
      try {
        const response = await callServer(`${base}pomerium/api/status`);
        available = response.ok;
      } catch {
        available = false;
      }
    }
    if (disposed) return;
    if (method === "auto") {
      method = available ? "widget" : "paste";
      model.send({ event: "method", method });
    } else if (!available && model.get("status") !== "signed-in") {
      fail(
        "This Jupyter server does not answer at pomerium/api/status, so the " +
          "pomerium_jupyter server extension is not enabled; use " +
          "%pomerium login URL --method paste.",
      );
      return;
    } else {
      model.send({ event: "method", method });
    }
    update();
  }

  signIn.addEventListener("click", onSignIn);
  retry.addEventListener("click", onSignIn);
  signOut.addEventListener("click", () => void onSignOut());
  pasteSubmit.addEventListener("click", submitPaste);
  pasteInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") submitPaste();
  });
  model.on("msg:custom", onCustomMessage);
  model.on("change:status", onStatusChange);
  model.on("change:user", update);
  model.on("change:message", update);
  model.on("change:method", onMethodChange);
  update();
  void detectServerExtension();

  return () => {
    disposed = true;
    stopFlow();
    if (channel) channel.close();
    model.off("msg:custom", onCustomMessage);
    model.off("change:status", onStatusChange);
    model.off("change:user", update);
    model.off("change:message", update);
    model.off("change:method", onMethodChange);
  };
}

export default { render };
