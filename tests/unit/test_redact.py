"""Credentials in URLs are masked in every message the kit prints."""

from __future__ import annotations

import pytest

from tfdock.redact import redact, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://alice:s3cretPW@localhost/simple", "https://****@localhost/simple"),
        ("https://tok3nSECRET@pypi.example.com/simple/", "https://****@pypi.example.com/simple/"),
        ("https://alice:pw@idx:8443/simple", "https://****@idx:8443/simple"),
        (
            "https://idx.example.com/simple?token=s3cret&page=2",
            "https://idx.example.com/simple?token=****&page=2",
        ),
        (
            "https://h/x?X-Amz-Signature=abc&api_key=k&private_token=t",
            "https://h/x?X-Amz-Signature=****&api_key=****&private_token=****",
        ),
        ("https://pypi.org/simple", "https://pypi.org/simple"),
    ],
)
def test_a_url_keeps_where_it_points_and_loses_its_secrets(url, shown):
    """User, password, a token as user and secret query values are masked; the rest stays."""
    assert redact_url(url) == shown


def test_every_url_in_a_message_is_redacted():
    """A line from pip with two URLs, one with a password and one with a token, shows neither."""
    line = (
        "WARNING: 401 Error, Credentials not correct for https://alice:s3cretPW@h/simple/six/ "
        "(mirror 'https://tok3n@m.example.com/simple')"
    )
    assert redact(line) == (
        "WARNING: 401 Error, Credentials not correct for https://****@h/simple/six/ "
        "(mirror 'https://****@m.example.com/simple')"
    )
    assert "s3cretPW" not in redact(line) and "tok3n" not in redact(line)


def test_a_url_that_does_not_parse_is_still_masked():
    """A malformed netloc (an IPv6 bracket left open) still loses its user and password."""
    assert redact_url("https://alice:pw@[::1/simple") == "https://****@[::1/simple"
