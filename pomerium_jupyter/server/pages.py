"""HTML pages served in the sign-in popup.

Both pages load nothing external. The callback page's only script carries a
per-response CSP nonce, so the Content-Security-Policy can forbid every other
script.
"""

from __future__ import annotations

import html
from string import Template

BROADCAST_CHANNEL = "pomerium_jupyter"

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 3em auto; max-width: 36em;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.2em; }
p[data-state="error"] { color: #a00; white-space: pre-wrap; }
p[data-state="done"] { color: #060; }
"""

_START_ERROR = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>Pomerium sign-in failed</title>
<style nonce="$nonce">$style</style>
</head>
<body>
<h1>Pomerium sign-in failed</h1>
<p data-pomerium="start-error" data-state="error">$message</p>
<p>You can close this window.</p>
</body>
</html>
"""
)


def start_error_page(message: str, nonce: str) -> str:
    """Render the page the start endpoint shows when no sign-in URL was obtained."""
    return _START_ERROR.substitute(
        nonce=nonce, style=_STYLE, message=html.escape(message)
    )


# The script reads the flow id and the token, removes both from the address
# bar and history before anything else, and hands the token to the
# authenticated completion endpoint with a same-origin POST. The POST carries
# the Jupyter login cookie even under SameSite=Strict, which the cross-site
# redirect from Pomerium would not. The completion URL is resolved relative to
# this page, so it stays right behind a reverse proxy that rewrites the prefix.
# The script avoids the dollar sign because the page is a string.Template.
_CALLBACK = Template(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>Pomerium sign-in</title>
<style nonce="$nonce">$style</style>
</head>
<body>
<h1>Pomerium sign-in</h1>
<p data-pomerium="callback-status" data-state="pending">Completing the sign-in…</p>
<script nonce="$nonce">
(function () {
  "use strict";
  var query = new URLSearchParams(window.location.search);
  var flow = query.get("flow") || "";
  var token = query.get("pomerium_jwt") || "";
  query = null;
  window.history.replaceState(null, "", window.location.pathname);

  var output = document.querySelector('[data-pomerium="callback-status"]');
  var channel = null;
  if ("BroadcastChannel" in window) {
    channel = new BroadcastChannel($channel);
  }

  function show(state, text) {
    output.setAttribute("data-state", state);
    output.textContent = text;
  }

  function notify(request, status, user) {
    if (channel !== null) {
      channel.postMessage({ request: request, status: status, user: user });
    }
  }

  function xsrfCookie() {
    var cookies = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < cookies.length; i++) {
      var eq = cookies[i].indexOf("=");
      if (cookies[i].slice(0, eq) === "_xsrf") {
        return decodeURIComponent(cookies[i].slice(eq + 1));
      }
    }
    return "";
  }

  if (!flow || !token) {
    token = "";
    show("error", "This page did not receive a sign-in result from Pomerium. " +
      "Start the sign-in again from the notebook.");
    notify(null, "error", null);
    return;
  }

  var url = new URL("api/flows/" + encodeURIComponent(flow) + "/complete",
    window.location.href);
  var body = JSON.stringify({ token: token });
  token = "";
  fetch(url.href, {
    method: "POST",
    credentials: "same-origin",
    cache: "no-store",
    referrerPolicy: "no-referrer",
    headers: { "Content-Type": "application/json", "X-XSRFToken": xsrfCookie() },
    body: body
  }).then(function (response) {
    return response.json().catch(function () { return {}; }).then(function (data) {
      if (response.ok && data.status === "done") {
        var user = data.user || "an unnamed user";
        show("done", "Signed in as " + user + ". You can close this window.");
        notify(data.request || null, "done", data.user || null);
        window.setTimeout(function () { window.close(); }, 300);
        return;
      }
      var text;
      if (data.status === "error" && typeof data.message === "string") {
        text = data.message;
      } else if (response.status === 403) {
        text = "Sign in to Jupyter in this browser, then start the sign-in again.";
      } else {
        text = "The Jupyter server could not complete the sign-in (HTTP " +
          response.status + "). Start the sign-in again from the notebook.";
      }
      show("error", text);
      notify(data.request || null, "error", null);
    });
  }).catch(function () {
    show("error", "The Jupyter server could not be reached to complete the " +
      "sign-in. Check that it is running, then start the sign-in again.");
    notify(null, "error", null);
  });
})();
</script>
</body>
</html>
"""
)


def callback_page(nonce: str) -> str:
    """Render the static callback page. It contains no request data, only the nonce."""
    return _CALLBACK.substitute(
        nonce=nonce, style=_STYLE, channel=f'"{BROADCAST_CHANNEL}"'
    )


def page_security_policy(nonce: str) -> str:
    """Return the Content-Security-Policy for both popup pages."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
