"""`dns+http://host:port` worker entries expand to one URL per address."""

from __future__ import annotations

import pytest

from core.endpoints import expand, is_dns, resolve_addresses


def test_plain_urls_stay_and_dns_entries_become_one_url_per_address() -> None:
    assert expand("http://w:8100/") == ["http://w:8100"]
    records = {"svc": ["10.0.0.9", "10.0.0.2", "fd00::1"]}
    assert expand("dns+http://svc:8100", lambda h: records[h]) == [
        "http://10.0.0.2:8100",
        "http://10.0.0.9:8100",
        "http://[fd00::1]:8100",
    ]
    assert expand("dns+http://svc:8100", lambda h: []) == []
    assert is_dns("dns+http://svc:1") and not is_dns("http://svc:1")


def test_a_malformed_dns_entry_says_how_to_write_it() -> None:
    with pytest.raises(ValueError, match="dns\\+http://<service>:<port>"):
        expand("dns+ftp://svc:1", lambda h: [])


def test_the_default_resolver_answers_localhost_and_nothing_for_an_unknown_name() -> None:
    assert "127.0.0.1" in resolve_addresses("localhost")
    assert resolve_addresses("no-such-host.invalid") == []
