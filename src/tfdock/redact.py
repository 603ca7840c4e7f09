"""Keep credentials out of every message: URLs are printed with their secrets masked.

Company package indexes and registries carry credentials in their URLs:
`https://alice:s3cret@host/simple`, a token as the user (`https://TOKEN@host`), or a
token in the query (`?token=...`). pip masks only the password; the kit masks all three,
in any text it prints (its own sentences and the lines it passes on from pip).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "****"
# A URL with a scheme, up to whitespace or a closing bracket or quote.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]]+")
# Query parameters that hold secrets, whatever their case.
_SECRET_KEYS = re.compile(r"token|secret|password|passwd|pass|key|auth|signature|sig", re.I)


def redact_url(url: str) -> str:
    """Return URL with its user, password and secret query values masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _mask_userinfo(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(key, MASK if _SECRET_KEYS.search(key) else value) for key, value in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str) -> str:
    """Return TEXT with every URL in it redacted (see redact_url)."""
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def _mask_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = f"{MASK}@{authority.rpartition('@')[2]}"
    return f"{scheme}{sep}{authority}{slash}{path}"
