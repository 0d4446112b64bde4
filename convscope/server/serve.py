"""``convscope serve``: bind first (so port 0 gets a real port to print), then run uvicorn."""

from __future__ import annotations

import socket
import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from ..errors import ConvscopeError
from .app import create_app
from .origin import LOOPBACK_HOSTS, WILDCARD_HOSTS


def host_names(host: str, allow_hosts: Sequence[str] = ()) -> list[str]:
    """The Host names a server bound to ``host`` answers to: the loopback names, ``host``
    itself (for 0.0.0.0 or ::, any IP address and this machine's name) and ``allow_hosts``."""
    names = [*LOOPBACK_HOSTS, host, *allow_hosts]
    if host in WILDCARD_HOSTS:
        names.append(socket.gethostname())
    return list(dict.fromkeys(name.lower() for name in names))


def serve(runs: list[Path], runs_dir: Path | None, data_dir: str | None, host: str = "127.0.0.1",
          port: int = 8000, open_browser: bool = True, allow_hosts: Sequence[str] = (),
          allow_origins: Sequence[str] = (), trust_code: bool = False,
          modules: Sequence[str] = (), module_input=None) -> None:
    """Serve the explorer until interrupted; only this machine can reach it unless ``host``
    says otherwise (then a warning is printed). Requests must name one of
    :func:`host_names` as their Host; pages of other origins may change nothing unless
    ``allow_origins`` names them. ``trust_code`` offers runs of Python models too, importing
    the code each keeps."""
    app = create_app(runs, runs_dir, data_dir, allowed_hosts=host_names(host, allow_hosts),
                     allowed_origins=allow_origins, trust_code=trust_code, modules=modules,
                     **({"module_input": module_input} if module_input else {}))
    ipv6 = ":" in host
    sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConvscopeError(f"cannot listen on {host}:{port} ({exc.strerror}); "
                             "choose another --port or --host") from None
    sock.listen(128)  # connections wait in the queue until uvicorn accepts them
    port = sock.getsockname()[1]
    url = f"http://{f'[{host}]' if ipv6 else host}:{port}/"
    print(f"convscope explorer: {url}", flush=True)
    if host not in LOOPBACK_HOSTS:
        print(f"warning: --host {host} exposes the explorer, uploads and live training to every "
              "machine that can reach this one, without any login; use it on trusted networks "
              "only", file=sys.stderr, flush=True)
    if open_browser:
        webbrowser.open(url if host not in ("0.0.0.0", "::") else f"http://127.0.0.1:{port}/")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
