/**
 * The one place that sends HTTP requests to the Jupyter server.
 *
 * `ServerConnection.makeRequest` adds the Jupyter token header and, for
 * every method, the `X-XSRFToken` header from the `_xsrf` cookie, which
 * JupyterHub 4.1 and later require even on GET.
 */

import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/**
 * An error from a request to the Pomerium endpoints. `message` is a sentence
 * for the user: the server's own message when it sent one.
 */
export class PomeriumRequestError extends Error {
  constructor(
    message: string,
    readonly status: number | null
  ) {
    super(message);
    this.name = 'PomeriumRequestError';
  }
}

/**
 * Return the absolute URL of `path` under the Jupyter base URL, such as
 * `pomerium/api/status`.
 */
export function serverUrl(
  path: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  return URLExt.join(settings.baseUrl, path);
}

/**
 * Send a request to `path` under the Jupyter base URL and return its JSON body.
 *
 * Throws `PomeriumRequestError` when the server cannot be reached, returns
 * an error status or sends a body that is not JSON.
 */
export async function requestJSON<T>(
  path: string,
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = serverUrl(path, settings);
  const headers = new Headers(init.headers);
  if (init.body !== undefined && !headers.has('Content-Type')) {
    headers.set('Content-Type', 'application/json');
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      { cache: 'no-store', ...init, headers },
      settings
    );
  } catch (error) {
    throw new PomeriumRequestError(
      'The Jupyter server could not be reached. Check that it is still ' +
        `running, then try again. (${errorText(error)})`,
      null
    );
  }

  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = null;
    }
  }
  if (!response.ok) {
    throw new PomeriumRequestError(
      serverMessage(body) ?? statusMessage(response.status, path),
      response.status
    );
  }
  if (body === null) {
    throw new PomeriumRequestError(
      `The Jupyter server sent an invalid response to ${path}: expected JSON.`,
      response.status
    );
  }
  return body as T;
}

/**
 * Show `error` as an error notification and return its message.
 */
export function notifyError(action: string, error: unknown): string {
  const message = `${action}: ${errorText(error)}`;
  Notification.error(message, { autoClose: false });
  return message;
}

/**
 * Return the readable message of an error value.
 */
export function errorText(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

function serverMessage(body: unknown): string | null {
  if (body !== null && typeof body === 'object') {
    const record = body as Record<string, unknown>;
    // The Pomerium handlers send "message"; Jupyter's own errors send it too,
    // and "reason" when the message is empty.
    for (const key of ['message', 'reason']) {
      const value = record[key];
      if (typeof value === 'string' && value.trim()) {
        return value.trim();
      }
    }
  }
  return null;
}

function statusMessage(status: number, path: string): string {
  if (status === 404 && path.startsWith('pomerium/')) {
    return (
      'The Pomerium endpoints are missing on this Jupyter server. Enable the ' +
      'server extension with "jupyter server extension enable ' +
      'pomerium_jupyter" and restart Jupyter.'
    );
  }
  if (status === 403) {
    return (
      'The Jupyter server rejected the request (HTTP 403). Reload the page ' +
      'and sign in to Jupyter again.'
    );
  }
  return `The Jupyter server returned HTTP ${status} for ${path}.`;
}
