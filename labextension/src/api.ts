/**
 * Types and calls of the Pomerium server extension's HTTP API. All paths are
 * relative to the Jupyter base URL.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { readCookie } from './format';
import { requestJSON, serverUrl } from './request';

/**
 * One signed-in deployment. Times are Unix seconds. The server never sends
 * the token itself.
 */
export interface IDeployment {
  deployment: string;
  user: string | null;
  obtained_at: number | null;
  expires_at: number | null;
  routes: string[];
}

/**
 * The signed-in deployments and the routes the server allows (null: any).
 */
export interface IStatus {
  deployments: IDeployment[];
  allowed_routes: string[] | null;
}

/**
 * The state of one sign-in, keyed by the client request id.
 */
export interface IRequestState {
  status: 'pending' | 'done' | 'error' | 'expired';
  message: string | null;
  user: string | null;
  deployment: string | null;
  expires_in: number;
}

/**
 * The message the callback page posts on the broadcast channel after each
 * sign-in attempt. It never contains the token.
 */
export interface ISignInMessage {
  request: string | null;
  status: string;
  user?: string | null;
}

/**
 * The BroadcastChannel name that the callback page posts to.
 */
export const BROADCAST_CHANNEL = 'pomerium_jupyter';

/**
 * Fetch the signed-in deployments.
 */
export function fetchStatus(): Promise<IStatus> {
  return requestJSON<IStatus>('pomerium/api/status');
}

/**
 * Fetch the state of the sign-in started with `requestId`.
 */
export function fetchRequestState(requestId: string): Promise<IRequestState> {
  return requestJSON<IRequestState>(
    `pomerium/api/requests/${encodeURIComponent(requestId)}`
  );
}

/**
 * Remove the stored token of the deployment serving `route`, or every stored
 * token when `route` is null, and return the new status.
 */
export function signOut(route: string | null): Promise<IStatus> {
  return requestJSON<IStatus>('pomerium/api/logout', {
    method: 'POST',
    body: JSON.stringify(route === null ? {} : { route })
  });
}

/**
 * Build the URL that starts a sign-in in a popup. The start endpoint changes
 * state on GET, so it checks the `_xsrf` query argument against the cookie.
 */
export function startUrl(
  route: string,
  requestId: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const query = URLExt.objectToQueryString({
    route,
    origin: window.location.origin,
    request: requestId,
    _xsrf: readCookie(document.cookie, '_xsrf')
  });
  return serverUrl('pomerium/start', settings) + query;
}

/**
 * Tell whether a broadcast message has the shape the callback page posts.
 */
export function isSignInMessage(data: unknown): data is ISignInMessage {
  if (data === null || typeof data !== 'object') {
    return false;
  }
  const record = data as Record<string, unknown>;
  return (
    typeof record.status === 'string' &&
    (record.request === null || typeof record.request === 'string')
  );
}
