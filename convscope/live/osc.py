"""OSC out, as the ml4a-ofx apps send it: where to (:class:`OscTarget`, ``"host:port"`` plus an
address; the ml4a defaults below) and a sender (:class:`OscSender`) built on python-osc that
never fails its caller: UDP has no connection, and a message that cannot be sent (nothing
listening, a network error) is counted in ``failures`` instead.

python-osc is an optional package (``pip install "convscope[osc]"``), imported on first send.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConvscopeError
from ..extras import require

MAX_PORT = 65535
# one UDP datagram holds at most 65,507 bytes: a float32 argument takes 4 bytes plus 1 of type
# tag, so about 13,000 values fit after the address
MAX_OSC_VALUES = 13_000


class OscError(ConvscopeError):
    """An OSC target or address that cannot be used; names the fix."""


@dataclass(frozen=True)
class OscTarget:
    """Where OSC messages go: ``host``, UDP ``port`` and the OSC ``address`` (``/wek/inputs``)."""

    host: str
    port: int
    address: str

    def __post_init__(self) -> None:
        check_address(self.address)
        if not 1 <= self.port <= MAX_PORT:
            raise OscError(f"OSC port {self.port} is out of range: give 1..{MAX_PORT}")
        if not self.host or any(c.isspace() for c in self.host):
            raise OscError(f"OSC host {self.host!r} is not a host name: give e.g. 127.0.0.1")

    @classmethod
    def parse(cls, text: str, address: str) -> OscTarget:
        """``"host:port"`` (``"[::1]:6448"`` for IPv6; a bare port means 127.0.0.1) and an
        address, checked: one-line OscError naming the expected form otherwise."""
        host, port = parse_host_port(text)
        return cls(host, port, address)

    def with_(self, host_port: str | None = None, address: str | None = None) -> OscTarget:
        """This target with another ``"host:port"`` and/or address."""
        host, port = parse_host_port(host_port) if host_port else (self.host, self.port)
        return OscTarget(host, port, address or self.address)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}{self.address}"


def parse_host_port(text: str) -> tuple[str, int]:
    """``"host:port"``, ``"[v6]:port"`` or ``"port"`` as (host, port)."""
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not host or (":" in host and not value.startswith("[")):
        raise OscError(f"OSC target {text!r} is not host:port: give e.g. 127.0.0.1:6448")
    number = int(port)
    if not 1 <= number <= MAX_PORT:
        raise OscError(f"OSC port {number} in {text!r} is out of range: give 1..{MAX_PORT}")
    return host, number


def check_address(address: str) -> str:
    """An OSC address pattern: starts with "/", printable ASCII without spaces, "#", ",", "?",
    "*", brackets or braces (python-osc would refuse those or read them as patterns)."""
    bad = set(" #,?*[]{}")
    if (not isinstance(address, str) or not address.startswith("/") or len(address) > 255
            or not address.isascii() or not address.isprintable() or bad & set(address)):
        raise OscError(f"OSC address {address!r} is not one: give a path such as /wek/inputs")
    return address


WEKINATOR_INPUTS = OscTarget("127.0.0.1", 6448, "/wek/inputs")  # ConvnetOSC: features, probs
CLASSIFICATION = OscTarget("127.0.0.1", 8000, "/classification")  # ConvnetClassifier: one int
OUTPUTS = OscTarget("127.0.0.1", 12000, "/wek/outputs")  # ConvnetRegressor: a float per output


class OscSender:
    """Sends float32 (or int32) OSC messages to one :class:`OscTarget` over UDP; ``sent``
    counts the messages sent, ``failures`` those that could not be (``last_error`` says why).
    A send never raises: a closed port must not stop a live page or a stream."""

    def __init__(self, target: OscTarget) -> None:
        self.target = target
        self.sent = 0
        self.failures = 0
        self.last_error: str | None = None
        self._builder = require("pythonosc.osc_message_builder", "osc", "OSC streams")
        udp = require("pythonosc.udp_client", "osc", "OSC streams")
        try:
            self._client = udp.SimpleUDPClient(target.host, target.port)
        except (OSError, ValueError) as exc:  # (an unknown host name)
            raise OscError(f"cannot send OSC to {target}: {exc}; check the host") from None

    def send_floats(self, values: Iterable[float]) -> bool:
        """One message of float32 arguments; True if it was sent."""
        return self._send([float(v) for v in values], "f")

    def send_ints(self, values: Iterable[int]) -> bool:
        """One message of int32 arguments (``/classification``); True if it was sent."""
        return self._send([int(v) for v in values], "i")

    def _send(self, values: list, arg_type: str) -> bool:
        builder = self._builder.OscMessageBuilder(self.target.address)
        for value in values:
            builder.add_arg(value, arg_type)
        try:
            self._client.send(builder.build())
        except (OSError, self._builder.BuildError) as exc:
            self.failures += 1
            self.last_error = str(exc) or type(exc).__name__
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        sock = getattr(self._client, "_sock", None)
        if sock is not None:
            sock.close()

    def __enter__(self) -> OscSender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_value_count(count: int, what: str) -> None:
    """OscError when ``count`` values cannot fit one OSC message over UDP."""
    if count > MAX_OSC_VALUES:
        raise OscError(f"{what} has {count:,} values; one OSC message holds at most "
                       f"{MAX_OSC_VALUES:,}: choose a later (smaller) layer or probs")
