// Unit tests of the pure helpers in src/format.ts, run against the compiled
// lib/format.js with Node's built-in test runner.
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { test } from 'node:test';

import {
  describeExpiry,
  describeSignInTime,
  formatDuration,
  newRequestId,
  normalizeRoute,
  offeredRoutes,
  readCookie,
  routeOf,
  statusBarText,
  statusBarTitle
} from '../lib/format.js';

const NOW = 1_700_000_000;

function deployment(overrides = {}) {
  return {
    deployment: 'https://authenticate.example.com',
    user: 'alice',
    obtained_at: NOW - 300,
    expires_at: NOW + 3600,
    routes: ['https://app.example.com'],
    ...overrides
  };
}

test('formatDuration picks the unit by size', () => {
  const cases = [
    [0, '0 s'],
    [59.9, '59 s'],
    [60, '1 min'],
    [3599, '59 min'],
    [3600, '1 h'],
    [3660, '1 h 1 min'],
    [86_400, '1 d'],
    [90_000, '1 d 1 h'],
    [-5, '0 s']
  ];
  for (const [seconds, expected] of cases) {
    assert.equal(formatDuration(seconds), expected, `seconds=${seconds}`);
  }
});

test('describeSignInTime handles unknown and recent times', () => {
  assert.equal(describeSignInTime(null, NOW), 'signed in at an unknown time');
  assert.equal(describeSignInTime(NOW - 2, NOW), 'signed in just now');
  assert.equal(describeSignInTime(NOW - 120, NOW), 'signed in 2 min ago');
});

test('describeExpiry covers unknown, future and past expiry', () => {
  assert.equal(describeExpiry(null, NOW), 'expiry unknown');
  assert.equal(describeExpiry(NOW + 7200, NOW), 'expires in 2 h');
  assert.equal(describeExpiry(NOW - 60, NOW), 'expired 1 min ago');
  assert.equal(describeExpiry(NOW, NOW), 'expired 0 s ago');
});

test('statusBarText is empty without deployments', () => {
  const status = { deployments: [], allowed_routes: null };
  assert.equal(statusBarText(status, NOW), '');
  assert.match(statusBarTitle(status, NOW), /Not signed in/);
});

test('statusBarText shows the user and sign-in age', () => {
  const status = { deployments: [deployment()], allowed_routes: null };
  assert.equal(statusBarText(status, NOW), 'Pomerium: alice · 5 min');
  const title = statusBarTitle(status, NOW);
  assert.match(title, /alice at https:\/\/authenticate\.example\.com/);
  assert.match(title, /expires in 1 h/);
});

test('statusBarText counts several deployments', () => {
  const status = {
    deployments: [
      deployment(),
      deployment({ deployment: 'https://auth.other.example', user: 'bob' }),
      deployment({ deployment: 'https://auth.third.example', user: null })
    ],
    allowed_routes: null
  };
  assert.equal(
    statusBarText(status, NOW),
    'Pomerium: alice, bob, unnamed user (3 deployments)'
  );
});

test('newRequestId matches the server pattern and differs each time', () => {
  const first = newRequestId(webcrypto);
  const second = newRequestId(webcrypto);
  assert.match(first, /^[A-Za-z0-9_-]{1,128}$/);
  assert.equal(first.length, 32);
  assert.notEqual(first, second);
});

test('readCookie finds and decodes one cookie', () => {
  const cookies = 'theme=dark; _xsrf=2%7Cabc%7Cdef; _xsrf_other=no';
  assert.equal(readCookie(cookies, '_xsrf'), '2|abc|def');
  assert.equal(readCookie(cookies, 'missing'), '');
  assert.equal(readCookie('', '_xsrf'), '');
  assert.equal(readCookie('_xsrf=%E0%A4%A', '_xsrf'), '%E0%A4%A');
});

test('normalizeRoute adds https and validates', () => {
  assert.equal(normalizeRoute('  app.example.com '), 'https://app.example.com/');
  assert.equal(
    normalizeRoute('http://127.0.0.1:8080/path'),
    'http://127.0.0.1:8080/path'
  );
  assert.throws(() => normalizeRoute(''), /Enter the URL/);
  assert.throws(
    () => normalizeRoute('ftp://files.example.com'),
    /not an http\(s\) URL/
  );
  assert.throws(() => normalizeRoute('https://'), /not a valid URL/);
});

test('routeOf returns the first route or null', () => {
  assert.equal(routeOf(deployment()), 'https://app.example.com');
  assert.equal(routeOf(deployment({ routes: [] })), null);
});

test('offeredRoutes merges defaults and allowed routes', () => {
  assert.deepEqual(
    offeredRoutes(
      ['https://app.example.com', ' ', 'https://api.example.com'],
      ['https://api.example.com', 'https://db.example.com']
    ),
    [
      'https://app.example.com',
      'https://api.example.com',
      'https://db.example.com'
    ]
  );
  assert.deepEqual(offeredRoutes([], null), []);
});
