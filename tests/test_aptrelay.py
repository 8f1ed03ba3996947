"""The download relay's two parsers, from tables: which hosts apt sources name, and where a proxy request asks
to go (the relay itself is attacked for real in test_hostfiles)."""

from __future__ import annotations

import pytest

from prodng.payload.aptrelay import destinations, requested

DEB822 = """Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEB822, {("deb.debian.org", 80)}),  # a comment names no source
        ("deb https://user:token@repo.example.org/x stable main\n", {("repo.example.org", 443)}),
        ("deb [signed-by=/k.gpg] http://[::1]:3142/debian bookworm main\n", {("::1", 3142)}),
        ("deb http://Mirror.Example.org:8080/debian bookworm main\n", {("mirror.example.org", 8080)}),
        ("deb file:/srv/repo ./\ndeb cdrom:[x]/ bookworm main\n", set()),
    ],
)
def test_destinations_of_apt_sources(text: str, expected: set[tuple[str, int]]) -> None:
    assert destinations(text) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (
            b"GET http://deb.debian.org/debian/dists/x HTTP/1.1\r\nHost: deb.debian.org\r\n\r\n",
            (("deb.debian.org", 80), False),
        ),
        (b"CONNECT repo.example.org:443 HTTP/1.1\r\n\r\n", (("repo.example.org", 443), True)),
        (b"CONNECT [::1]:22 HTTP/1.1\r\n\r\n", (("::1", 22), True)),
        (b"GET /debian HTTP/1.1\r\n\r\n", None),  # not a proxy request: no destination
        (b"GET https://deb.debian.org/ HTTP/1.1\r\n\r\n", None),  # https goes by CONNECT
        (b"CONNECT deb.debian.org HTTP/1.1\r\n\r\n", None),
        (b"\x16\x03\x01 binary", None),
    ],
)
def test_where_a_proxy_request_asks_to_go(head: bytes, expected: object) -> None:
    assert requested(head) == expected
