"""The Host and Origin policy, against DNS rebinding and cross-site requests.

Every request must name, in its ``Host`` header, one of the host names the server was started
for (any port): a page of another site whose name was made to resolve to this machine (DNS
rebinding) still sends its own name, and gets 403. State-changing requests (POST, PUT, PATCH,
DELETE) and WebSocket handshakes that carry an ``Origin`` must come from the server's own
origin (the host and port the request was sent to) or one allowed explicitly; requests
without an Origin (curl, scripts, same-origin GETs) are not cross-site and pass.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConvscopeError
from .errors import error_response

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::")  # allowed: any IP address (IPv4 only for 0.0.0.0)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CLOSE_REASON = "Host or Origin not allowed (see docs/api.md)"
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def host_name(netloc: str) -> str:
    """The host name of a ``Host`` header or URL netloc: lowercase, without port, brackets or
    a trailing dot (``[::1]:8000`` -> ``::1``)."""
    name = netloc.strip().lower()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":")[0]
    return name.rstrip(".")


def _port(netloc: str, scheme: str) -> int | None:
    try:
        return urlsplit(f"//{netloc}").port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None


def normalise_origin(origin: str) -> tuple[str, int | None] | None:
    """An origin (``scheme://host[:port]``) as (host name, port), or None if it is not one."""
    parts = urlsplit(origin.strip())
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        return None
    return host_name(parts.netloc), _port(parts.netloc, parts.scheme)


class HostOriginPolicy:
    """Which ``Host`` names and extra origins a server accepts (names are case-insensitive;
    ``0.0.0.0`` allows any IPv4 address, ``::`` any IP address: a bare address cannot be
    rebound by DNS)."""

    def __init__(self, hosts: Collection[str] = LOOPBACK_HOSTS,
                 origins: Collection[str] = ()) -> None:
        self.hosts = frozenset(host_name(h) for h in hosts)
        self.origins = set()
        for origin in origins:
            parsed = normalise_origin(origin)
            if parsed is None:
                raise ConvscopeError(f"--allow-origin {origin!r} is not an origin; give "
                                     "http(s)://host[:port], e.g. https://explorer.example.org")
            self.origins.add(parsed)

    def host_allowed(self, name: str) -> bool:
        if name in self.hosts:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return "::" in self.hosts or ("0.0.0.0" in self.hosts and address.version == 4)

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Whether a request sent to ``host`` (its Host header) may come from ``origin``."""
        parsed = normalise_origin(origin)
        if parsed is None:  # "null" (sandboxed frames, file: pages) or garbage
            return False
        scheme = urlsplit(origin.strip()).scheme
        own = (host_name(host), _port(host, scheme))
        return parsed == own or parsed in self.origins

    def refusal(self, scope: Scope) -> str | None:
        """Why ``scope`` (an HTTP request or a WebSocket handshake) is refused, or None."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.host_allowed(host_name(host)):
            shown = _shown(host_name(host))
            return (f"Host {shown} is not a name this server answers to "
                    f"({', '.join(sorted(self.hosts))}); to serve it under another name on "
                    "purpose, start it with `convscope serve --allow-host NAME`")
        origin = headers.get("origin")
        guarded = scope["type"] == "websocket" or scope.get("method") in STATE_CHANGING
        if guarded and origin is not None and not self.origin_allowed(origin, host):
            return (f"cross-site request refused: Origin {_shown(origin)} is not this "
                    "server's own; to let pages of another origin use it on purpose, start it "
                    "with `convscope serve --allow-origin URL`")
        return None


def _shown(value: str) -> str:
    """A header value quoted for a message, shortened if long."""
    return repr(value if len(value) <= 60 else value[:57] + "...") if value else "(none)"


class HostOriginCheck:
    """ASGI middleware enforcing a :class:`HostOriginPolicy`: a refused HTTP request gets
    403 ``{"error": ...}``; a refused WebSocket handshake is closed (code 1008, which the
    server answers with 403) before it is accepted."""

    def __init__(self, app: ASGIApp, policy: HostOriginPolicy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            reason = self.policy.refusal(scope)
            if reason is not None:
                if scope["type"] == "http":
                    await error_response(403, reason)(scope, receive, send)
                else:
                    await receive()  # the websocket.connect message
                    await send({"type": "websocket.close", "code": 1008, "reason": CLOSE_REASON})
                return
        await self.app(scope, receive, send)
