"""The CSRF check of CONNECT: does the token the page sent match the CSRF cookie of the WebSocket handshake?

Django's middleware compares a request's token with the cookie through private helpers; this module does the same
with Django's public constants (the token alphabet and lengths): a token is the 32-character secret, or 64
characters that are a mask followed by the secret enciphered with it (what ``{{ csrf_token }}`` renders).
"""

from __future__ import annotations

from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH
from django.utils.crypto import constant_time_compare

_ALLOWED = frozenset(CSRF_ALLOWED_CHARS)


def token_matches_cookie(token: str | None, cookie: str | None) -> bool:
    """True when ``token`` (from CONNECT) and ``cookie`` (the CSRF cookie) carry the same secret."""
    token_secret, cookie_secret = _secret(token), _secret(cookie)
    return token_secret is not None and cookie_secret is not None and constant_time_compare(token_secret, cookie_secret)


def _secret(token: str | None) -> str | None:
    """The secret of a well-formed token (masked or not), or None."""
    if not token or len(token) not in (CSRF_SECRET_LENGTH, 2 * CSRF_SECRET_LENGTH) or not _ALLOWED.issuperset(token):
        return None
    if len(token) == CSRF_SECRET_LENGTH:
        return token
    mask, cipher = token[:CSRF_SECRET_LENGTH], token[CSRF_SECRET_LENGTH:]
    chars = CSRF_ALLOWED_CHARS
    return "".join(chars[(chars.index(c) - chars.index(m)) % len(chars)] for c, m in zip(cipher, mask, strict=True))
