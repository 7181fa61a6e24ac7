"""Token: unverified claims as hints, and the value kept out of reprs."""

import pickle
import time

import jwt
import pytest

from pomerium_jupyter import Token

SECRET = "test-signing-secret-of-at-least-32-bytes"


def make_jwt(**claims: object) -> str:
    return jwt.encode(dict(claims), SECRET, algorithm="HS256")


def test_claims_read_without_verification() -> None:
    value = make_jwt(sub="user-1", iss="authenticate.example.com", jti="s-1")
    token = Token(value)
    assert token.user == "user-1"
    assert token.issuer == "authenticate.example.com"
    assert token.session_id == "s-1"
    assert token.expires_at is None


def test_email_preferred_over_sub() -> None:
    token = Token(make_jwt(sub="123", email="alice@example.com"))
    assert token.user == "alice@example.com"


def test_past_exp_is_only_a_hint() -> None:
    past = int(time.time()) - 3600
    token = Token(make_jwt(sub="alice", exp=past))
    assert token.expires_at == past
    assert token.value.count(".") == 2


@pytest.mark.parametrize("value", ["opaque-service-token", "a.b.c", "x" * 10])
def test_non_jwt_value_has_no_claims(value: str) -> None:
    token = Token(value)
    assert token.claims == {}
    assert token.user is None
    assert token.value == value


def test_empty_value_rejected() -> None:
    with pytest.raises(ValueError, match="cannot be empty"):
        Token("  \n")


def test_repr_and_str_hide_value() -> None:
    value = make_jwt(sub="alice")
    token = Token(value)
    assert value not in repr(token)
    assert value not in str(token)
    assert value not in f"{token}"
    assert "alice" in repr(token)


def test_pickle_refused() -> None:
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(Token(make_jwt(sub="alice")))


def test_equality_by_value() -> None:
    value = make_jwt(sub="alice")
    assert Token(value) == Token(value, source="other")
    assert Token(value) != Token(make_jwt(sub="bob"))


@pytest.mark.parametrize("exp", [1e30, -1e30, True, "soon"])
def test_unusable_exp_is_unknown(exp: object) -> None:
    assert Token(make_jwt(sub="alice", exp=exp)).expires_at is None
