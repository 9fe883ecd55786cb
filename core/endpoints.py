"""Worker endpoints named by DNS: `dns+http://host:port` stands for every address of `host`.

A Kubernetes headless Service answers its name with one A record per ready pod, so the gateway
and the job runners see each worker pod as its own replica and balance per request, instead of
one ClusterIP that kube-proxy balances per connection. The resolver is a plain function
(`resolve_addresses` by default) so tests pass their own.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

DNS_PREFIX = "dns+"
Resolver = Callable[[str], list[str]]


def is_dns(url: str) -> bool:
    return url.startswith(DNS_PREFIX)


def resolve_addresses(host: str) -> list[str]:
    """The host's addresses (A and AAAA records), each once; [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _netloc(address: str, port: int | None) -> str:
    try:
        literal = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        literal = address
    return f"{literal}:{port}" if port else literal


def expand(url: str, resolve: Resolver = resolve_addresses) -> list[str]:
    """The worker base URLs `url` stands for: itself, or one per address of a `dns+` URL."""
    url = url.rstrip("/")
    if not is_dns(url):
        return [url]
    parts = urlsplit(url[len(DNS_PREFIX) :])
    if not parts.hostname or parts.scheme not in ("http", "https"):
        raise ValueError(f"{url!r}: write dns+http://<service>:<port>")
    path = parts.path.rstrip("/")
    return sorted(
        f"{parts.scheme}://{_netloc(a, parts.port)}{path}" for a in resolve(parts.hostname)
    )
