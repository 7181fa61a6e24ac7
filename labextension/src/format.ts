/**
 * Pure helpers for texts and identifiers. They import nothing from JupyterLab,
 * so the unit tests run them under plain Node.
 */

import type { IDeployment, IStatus } from './api';

const MINUTE = 60;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * Format a non-negative number of seconds as a short duration, such as
 * "45 s", "12 min", "3 h 5 min" or "2 d 4 h".
 */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.floor(seconds));
  if (total < MINUTE) {
    return `${total} s`;
  }
  if (total < HOUR) {
    return `${Math.floor(total / MINUTE)} min`;
  }
  if (total < DAY) {
    const hours = Math.floor(total / HOUR);
    const minutes = Math.floor((total % HOUR) / MINUTE);
    return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  }
  const days = Math.floor(total / DAY);
  const hours = Math.floor((total % DAY) / HOUR);
  return hours ? `${days} d ${hours} h` : `${days} d`;
}

/**
 * Describe when a sign-in happened, relative to `now` (Unix seconds).
 */
export function describeSignInTime(
  obtainedAt: number | null,
  now: number
): string {
  if (obtainedAt === null) {
    return 'signed in at an unknown time';
  }
  const age = now - obtainedAt;
  if (age < 5) {
    return 'signed in just now';
  }
  return `signed in ${formatDuration(age)} ago`;
}

/**
 * Describe when a token expires, relative to `now` (Unix seconds). The expiry
 * is the token's unverified claim, so the text uses "expires", not "valid".
 */
export function describeExpiry(expiresAt: number | null, now: number): string {
  if (expiresAt === null) {
    return 'expiry unknown';
  }
  const remaining = expiresAt - now;
  if (remaining <= 0) {
    return `expired ${formatDuration(-remaining)} ago`;
  }
  return `expires in ${formatDuration(remaining)}`;
}

/**
 * Return the name shown for a deployment's user.
 */
export function userLabel(deployment: IDeployment): string {
  return deployment.user || 'unnamed user';
}

/**
 * Describe one signed-in deployment on one line.
 */
export function describeDeployment(deployment: IDeployment, now: number): string {
  return (
    `${userLabel(deployment)} at ${deployment.deployment}: ` +
    `${describeSignInTime(deployment.obtained_at, now)}, ` +
    describeExpiry(deployment.expires_at, now)
  );
}

/**
 * Return the status bar text for a status, or an empty string when no
 * deployment is signed in.
 */
export function statusBarText(status: IStatus, now: number): string {
  const deployments = status.deployments;
  if (deployments.length === 0) {
    return '';
  }
  const newest = deployments.reduce((latest, item) =>
    (item.obtained_at ?? 0) > (latest.obtained_at ?? 0) ? item : latest
  );
  const users = Array.from(new Set(deployments.map(userLabel)));
  let text = `Pomerium: ${users.join(', ')}`;
  if (deployments.length > 1) {
    text += ` (${deployments.length} deployments)`;
  } else if (newest.obtained_at !== null) {
    text += ` · ${formatDuration(now - newest.obtained_at)}`;
  }
  return text;
}

/**
 * Return the status bar tooltip: one line per signed-in deployment.
 */
export function statusBarTitle(status: IStatus, now: number): string {
  if (status.deployments.length === 0) {
    return 'Not signed in to any Pomerium deployment';
  }
  const lines = status.deployments.map(item => describeDeployment(item, now));
  return ['Pomerium sign-ins (click to manage):', ...lines].join('\n');
}

/**
 * Create a client request id for a sign-in. The server accepts 1 to 128
 * characters from [A-Za-z0-9_-]. `crypto.getRandomValues` is used because
 * `crypto.randomUUID` is missing on pages served over plain http from a
 * non-loopback host.
 */
export function newRequestId(random: Crypto = globalThis.crypto): string {
  const bytes = new Uint8Array(16);
  random.getRandomValues(bytes);
  return Array.from(bytes, byte => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * Return the decoded value of cookie `name` from a `document.cookie` string,
 * or an empty string when it is not set.
 */
export function readCookie(cookies: string, name: string): string {
  for (const part of cookies ? cookies.split(';') : []) {
    const pair = part.trim();
    const separator = pair.indexOf('=');
    if (separator > 0 && pair.slice(0, separator) === name) {
      const raw = pair.slice(separator + 1);
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return '';
}

/**
 * Normalize a route URL typed by the user: trim it and add "https://" when
 * the scheme is missing. Throws an Error with a readable message when the
 * result is not an http(s) URL with a host.
 */
export function normalizeRoute(input: string): string {
  let text = input.trim();
  if (!text) {
    throw new Error(
      'Enter the URL of a Pomerium route, such as https://app.example.com.'
    );
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    text = `https://${text}`;
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(
      `"${input.trim()}" is not a valid URL. Enter a route URL such as ` +
        'https://app.example.com.'
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(
      `"${input.trim()}" is not an http(s) URL. Pomerium routes use http or https.`
    );
  }
  if (!url.hostname) {
    throw new Error(`"${input.trim()}" has no host name.`);
  }
  return url.href;
}

/**
 * Return the route to sign out of for a deployment: the first route that
 * was signed in through it, or null when the server recorded none.
 */
export function routeOf(deployment: IDeployment): string | null {
  return deployment.routes.length > 0 ? deployment.routes[0] : null;
}

/**
 * List the routes offered in the sign-in dialog: the configured defaults,
 * then the routes the server allows, without duplicates and in that order.
 */
export function offeredRoutes(
  defaults: readonly string[],
  allowed: readonly string[] | null
): string[] {
  const routes: string[] = [];
  for (const route of [...defaults, ...(allowed ?? [])]) {
    const text = route.trim();
    if (text && !routes.includes(text)) {
      routes.push(text);
    }
  }
  return routes;
}
