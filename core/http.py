"""Who the client is: its address, for the login lockout (django-axes) and the personal-data audit log alike.

django-axes asks `client_ip` through AXES_CLIENT_IP_CALLABLE, so a lockout and an audit row always name the same
address (the lockout handler is core/lockout.py: this module needs nothing of axes). Behind the reverse proxy
every connection comes from the proxy; only the entries the trusted proxies appended to their header (counted
from the right) say who the client is. Whatever a client wrote into that header itself stands further left and
is never read, so forging X-Forwarded-For changes nothing.
"""

import ipaddress
import logging
from functools import lru_cache

from django.conf import settings

logger = logging.getLogger(__name__)


def client_ip(request) -> str | None:
    """Return the client's address: REMOTE_ADDR, or the one the outermost trusted proxy saw (TRUSTED_PROXY_*)."""
    remote_addr = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0 or not _from_trusted_proxy(remote_addr):
        return remote_addr
    header = request.META.get("HTTP_" + settings.TRUSTED_PROXY_HEADER.upper().replace("-", "_"), "")
    forwarded = [entry.strip() for entry in header.split(",")] if header else []
    if len(forwarded) < count:
        # Fewer hops than proxies configured: the request did not come through them (e.g. straight to gunicorn).
        return remote_addr
    try:
        return str(ipaddress.ip_address(forwarded[-count]))
    except ValueError:
        logger.warning("%s from proxy %s holds no address at position -%d: %r",
                       settings.TRUSTED_PROXY_HEADER, remote_addr, count, header)
        return remote_addr


def _from_trusted_proxy(remote_addr: str | None) -> bool:
    networks = _networks(tuple(settings.TRUSTED_PROXY_IPS))
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return any(address.version == network.version and address in network for network in networks)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())
