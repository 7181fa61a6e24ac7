"""HMAC-signed URLs, the sealed callback session and the OAuth state value."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

# Pomerium's urlutil.DefaultLeeway: signed URLs stay valid this long past expiry.
SIGNED_URL_LEEWAY = 60.0
# Lifetime of a signed URL (issued + 5 minutes).
SIGNED_URL_LIFETIME = 300.0

ISSUED = "pomerium_issued"
EXPIRY = "pomerium_expiry"
SIGNATURE = "pomerium_signature"


def encode_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Encode like Go's url.Values.Encode: keys sorted, values in order, '+' for ' '."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return "&".join(
        f"{quote_plus(key, safe='')}={quote_plus(value, safe='')}"
        for key in sorted(grouped)
        for value in grouped[key]
    )


def parse_query(raw: str) -> list[tuple[str, str]]:
    return parse_qsl(raw, keep_blank_values=True)


def _hmac_digest(key: bytes, data: bytes) -> bytes:
    # Pomerium's cryptutil.GenerateHMAC uses HMAC with SHA-512/256.
    return hmac.new(key, data, "sha512_256").digest()


def _signed_data(url_without_signature: str, issued: int, expiry: int) -> bytes:
    # Go's fmt.Sprint(url, issued, expiry) puts a space only between the two
    # integers, because it adds spaces only between operands that are not strings.
    return f"{url_without_signature}{issued} {expiry}".encode()


def sign_url(key: bytes, url: str, now: float) -> str:
    """Add pomerium_issued, pomerium_expiry and pomerium_signature to `url`."""
    parts = urlsplit(url)
    issued = int(now)
    expiry = int(now + SIGNED_URL_LIFETIME)
    pairs = [(k, v) for k, v in parse_query(parts.query) if k not in (ISSUED, EXPIRY)]
    pairs += [(ISSUED, str(issued)), (EXPIRY, str(expiry))]
    unsigned = urlunsplit(parts._replace(query=encode_query(pairs)))
    signature = base64.urlsafe_b64encode(
        _hmac_digest(key, _signed_data(unsigned, issued, expiry))
    ).decode()
    pairs.append((SIGNATURE, signature))
    return urlunsplit(parts._replace(query=encode_query(pairs)))


def verify_signed_url(key: bytes, url: str, now: float) -> bool:
    """Check the signature and time window of a URL made by sign_url()."""
    parts = urlsplit(url)
    pairs = parse_query(parts.query)
    values = dict(pairs)
    try:
        encoded_signature = values.get(SIGNATURE, "")
        signature = base64.urlsafe_b64decode(encoded_signature)
        issued = int(values[ISSUED])
        expiry = int(values[EXPIRY])
    except (KeyError, ValueError, binascii.Error):
        return False
    # Python's decoder skips trailing garbage that Go's strict decoder rejects.
    if base64.urlsafe_b64encode(signature).decode() != encoded_signature:
        return False
    unsigned_pairs = [(k, v) for k, v in pairs if k != SIGNATURE]
    unsigned = urlunsplit(parts._replace(query=encode_query(unsigned_pairs)))
    expected = _hmac_digest(key, _signed_data(unsigned, issued, expiry))
    if not hmac.compare_digest(signature, expected):
        return False
    if now > expiry + SIGNED_URL_LEEWAY:
        return False
    return issued <= now + SIGNED_URL_LEEWAY


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, purpose, hashlib.sha256).digest()


def _keystream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = [
        hmac.new(key, nonce + counter.to_bytes(8, "big"), "sha256").digest()
        for counter in range((length + 31) // 32)
    ]
    return b"".join(blocks)[:length]


def seal(key: bytes, plaintext: bytes) -> str:
    """Encrypt and authenticate `plaintext` for the route callback.

    Pomerium uses XChaCha20-Poly1305 here. Only this server opens the value, so
    an HMAC-SHA-256 keystream with an encrypt-then-MAC tag serves the same
    purpose without a third-party dependency.
    """
    nonce = secrets.token_bytes(16)
    stream = _keystream(_derive(key, b"callback-encryption"), nonce, len(plaintext))
    ciphertext = bytes(a ^ b for a, b in zip(plaintext, stream, strict=True))
    tag = hmac.new(_derive(key, b"callback-mac"), nonce + ciphertext, "sha256").digest()
    return base64.urlsafe_b64encode(nonce + ciphertext + tag).decode()


def open_sealed(key: bytes, sealed: str) -> bytes | None:
    """Return the plaintext of a seal() value, or None if it was altered."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
    except (ValueError, binascii.Error):
        return None
    if len(raw) < 48:
        return None
    nonce, ciphertext, tag = raw[:16], raw[16:-32], raw[-32:]
    expected = hmac.new(
        _derive(key, b"callback-mac"), nonce + ciphertext, "sha256"
    ).digest()
    if not hmac.compare_digest(tag, expected):
        return None
    stream = _keystream(_derive(key, b"callback-encryption"), nonce, len(ciphertext))
    return bytes(a ^ b for a, b in zip(ciphertext, stream, strict=True))


def make_state(key: bytes, redirect_url: str, now: float) -> str:
    """Build the OAuth state: nonce|timestamp|sealed(redirect URL), base64url."""
    prefix = f"{secrets.token_urlsafe(16)}|{int(now)}|"
    return base64.urlsafe_b64encode(
        (prefix + seal(key + prefix.encode(), redirect_url.encode())).encode()
    ).decode()


def read_state(key: bytes, state: str) -> tuple[int, str] | None:
    """Return (timestamp, redirect URL) from make_state() output, or None."""
    try:
        decoded = base64.urlsafe_b64decode(state.encode()).decode()
        nonce, timestamp, sealed = decoded.split("|", 2)
        issued = int(timestamp)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    prefix = f"{nonce}|{timestamp}|"
    redirect = open_sealed(key + prefix.encode(), sealed)
    if redirect is None:
        return None
    return issued, redirect.decode(errors="replace")
