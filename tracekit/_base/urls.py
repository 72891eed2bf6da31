"""Secrets in HTTP requests: credential headers, URL passwords and secret-looking query
parameters, replaced before an exchange is recorded (and in error messages, and in replay's
near-miss reports)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from .redact import MARKER

__all__ = ["SECRET_HEADERS", "scrub_headers", "scrub_url", "secret_param", "secrets_in"]

#: headers whose value is a credential: recorded as the redaction marker
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-auth-token",
        "x-amz-security-token",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
    }
)
_SECRET_PARAMS = frozenset(
    {
        "key",
        "apikey",
        "api_key",
        "api-key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "signature",
        "sig",
        "auth",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "code",
    }
)
_SECRET_SUFFIXES = ("_key", "-key", "_token", "-token", "_secret", "-secret", "_password")


def scrub_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers by lower-cased name, credentials replaced by the marker (repeats joined)."""
    out: dict[str, str] = {}
    for name, value in items:
        name = name.lower()
        value = MARKER if name in SECRET_HEADERS else value
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def scrub_url(url: str) -> str:
    """The URL with its password and the values of secret-looking query parameters replaced."""
    parts = urlsplit(url)
    if parts.password:
        hidden = quote(MARKER)  # brackets are not allowed in a URL's host part
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", f":{hidden}@"))
    if parts.query:
        pairs = [
            (k, MARKER if secret_param(k) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(pairs, safe="[]"))
    return urlunsplit(parts)


def secret_param(name: str) -> bool:
    """A query parameter whose value is a credential: by its whole name, or a ``_key`` /
    ``_token`` / ``_secret`` suffix (``keyword`` or ``max_tokens`` are not)."""
    lowered = name.lower()
    return lowered in _SECRET_PARAMS or lowered.endswith(_SECRET_SUFFIXES)


def secrets_in(url: str, headers: Iterable[tuple[str, str]]) -> list[str]:
    """The secret values a request carries (to scrub them from an error message too)."""
    parts = urlsplit(url)
    found = [v for k, v in parse_qsl(parts.query) if secret_param(k)]
    found += [
        raw.partition("=")[2]
        for raw in parts.query.split("&")  # as sent: encoded
        if secret_param(unquote(raw.partition("=")[0]))
    ]
    found += [v for k, v in headers if k.lower() in SECRET_HEADERS]
    found += [parts.password] if parts.password else []
    return sorted({v for v in found if len(v) >= 4}, key=len, reverse=True)
