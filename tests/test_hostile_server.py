"""Hostile requests to the explorer (issue 17, points 1 and 4): networks too large for live
training are refused from the spec alone, before anything is allocated; requests naming another
Host (DNS rebinding) and cross-site changes and WebSockets are refused with 403."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from served import served
from starlette.websockets import WebSocketDisconnect

from convscope.cli import build_parser
from convscope.errors import ConvscopeError
from convscope.registry import list_models
from convscope.server import create_app, serve
from convscope.server.live import MAX_ACTIVATION_BYTES, _check_fits, held_at_once, live_trainable
from convscope.spec import activation_values, resolve

MNIST_FC = [{"type": "input", "sx": 28, "sy": 28, "depth": 1},
            {"type": "fc", "num_neurons": 6, "activation": "sigmoid"},
            {"type": "softmax", "num_classes": 10}]
HUGE_PARAMS = [{"type": "input", "sx": 32, "sy": 32, "depth": 3},  # 477,001,770 parameters
               {"type": "fc", "num_neurons": 154_720},
               {"type": "softmax", "num_classes": 10}]
HUGE_OUTPUTS = [{"type": "input", "sx": 32, "sy": 32, "depth": 3},  # 122 parameters, 12.8 GB
                {"type": "conv", "sx": 1, "filters": 8, "pad": 10_000},  # of outputs per example
                {"type": "pool", "sx": 20_032},
                {"type": "softmax", "num_classes": 10}]
EVIL = "http://attacker.example"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The explorer with no models and no data: every check here comes before either (a job
    started by mistake fails at once: downloads go to a closed port)."""
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CONVSCOPE_DOWNLOAD_URL", "http://127.0.0.1:9/")
    return create_app(runs_dir=tmp_path / "runs", data_dir=str(tmp_path / "no-data"),
                      bundled_dir=tmp_path)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        yield client


@pytest.fixture
def nothing_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any torch module is constructed (a network would be allocated)."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("a torch module was built before the size check")

    monkeypatch.setattr(torch.nn.Module, "__init__", refuse)


def socket_refused(client: TestClient, **options) -> None:
    """The training WebSocket's handshake is closed (1008) before any message comes."""
    with pytest.raises(WebSocketDisconnect) as closed:
        with client.websocket_connect("/api/train/nope/ws", **options) as socket:
            socket.receive_json()
    assert closed.value.code == 1008


def refused(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert "\n" not in message and all(word in message for word in words), message
    return message


# ---- point 1: sizes from the spec alone ----------------------------------------------------


def test_a_477m_parameter_spec_is_refused_without_building(client, nothing_built):
    response = client.post("/api/train", json={"spec": HUGE_PARAMS})
    refused(response, 400, "477,001,770 parameters", "10,000,000")


def test_huge_outputs_with_few_parameters_are_refused_without_building(client, nothing_built):
    response = client.post("/api/train", json={"spec": HUGE_OUTPUTS})
    refused(response, 400, "GiB for its layer outputs", "fewer filters")


def test_a_batch_too_large_for_memory_names_one_that_fits(client, nothing_built):
    wide = [{"type": "input", "sx": 32, "sy": 32, "depth": 3},
            {"type": "conv", "sx": 3, "filters": 64, "pad": 1, "activation": "relu"},
            {"type": "softmax", "num_classes": 10}]
    per_example = activation_values(resolve(wide)) * 4
    fits = MAX_ACTIVATION_BYTES // per_example
    assert 64 <= fits < 4096
    message = refused(client.post("/api/train", json={"spec": wide, "batch_size": 4096}), 400,
                      "batch size 4,096", f"set batch_size to at most {fits:,}")
    assert "GiB" in message


@pytest.mark.parametrize("layer", [{"type": "fc", "num_neurons": 10**12},
                                   {"type": "conv", "sx": 1, "filters": 2, "pad": 10**300},
                                   {"type": "conv", "sx": 3, "filters": 10**400}])
def test_absurd_sizes_get_a_400_not_a_500(client, nothing_built, layer):
    spec = [{"type": "input", "sx": 32, "sy": 32, "depth": 3}, layer,
            {"type": "softmax", "num_classes": 10}]
    message = refused(client.post("/api/train", json={"spec": spec}), 400, "live training")
    assert len(message) < 300


def test_every_live_trainable_zoo_model_fits_at_its_recipe_batch_size():
    for entry in list_models():
        if live_trainable(entry.recipe.get("task", "classify"), entry.dataset):
            _check_fits(resolve(entry.spec), entry.dataset,
                        held_at_once(entry.recipe.get("batch_size", 64),
                                     entry.recipe.get("micro_batch", 0)))


# ---- point 4: Host and Origin --------------------------------------------------------------


@pytest.mark.parametrize("base_url", [EVIL, "http://attacker.example:8000", "http://testserver",
                                      "http://127.0.0.1.attacker.example"])
def test_another_host_is_refused_for_reads_and_training(app, base_url, nothing_built):
    with TestClient(app, base_url=base_url) as client:
        refused(client.get("/api/models"), 403, "not a name this server answers to",
                "--allow-host")
        refused(client.post("/api/train", json={"spec": MNIST_FC}), 403, "--allow-host")
        refused(client.get("/"), 403)
        socket_refused(client)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1", "http://localhost:8000",
                                      "http://[::1]:9", "http://LOCALHOST."])
def test_local_names_on_any_port_are_served(app, base_url):
    with TestClient(app, base_url=base_url) as client:
        assert client.get("/api/models").status_code == 200


def test_cross_origin_changes_are_refused(client: TestClient):
    evil = {"origin": EVIL}
    refused(client.post("/api/train", json={"spec": MNIST_FC}, headers=evil), 403,
            "cross-site request refused", "--allow-origin")
    refused(client.post("/api/train/nope/stop", headers=evil), 403, "cross-site")
    upload = {"image": ("x.png", b"\x89PNG not really", "image/png")}
    refused(client.post("/api/models/any/activations/upload", files=upload, headers=evil), 403)
    for origin in ("null", "http://127.0.0.1:8001", "http://localhost:8000", "file://"):
        refused(client.post("/api/train/nope/stop", headers={"origin": origin}), 403)
    for method in ("put", "patch", "delete"):
        assert client.request(method, "/api/train", headers=evil).status_code == 403


def test_cross_origin_websockets_are_refused(client: TestClient):
    socket_refused(client, headers={"origin": EVIL})
    socket_refused(client, headers={"origin": "null"})


def test_same_origin_and_no_origin_requests_work(client: TestClient):
    own = {"origin": "http://127.0.0.1:8000"}
    for headers in (own, {}):
        assert client.post("/api/train/nope/stop", headers=headers).status_code == 404
        upload = {"image": ("x.png", b"\x89PNG not really", "image/png")}
        response = client.post("/api/models/any/activations/upload", files=upload,
                               headers=headers)
        assert response.status_code == 404  # past the check: an unknown model
        with client.websocket_connect("/api/train/nope/ws", headers=headers) as socket:
            assert socket.receive_json()["type"] == "error"
    assert client.get("/api/models", headers={"origin": EVIL}).status_code == 200  # unreadable


def test_allowed_hosts_and_origins_are_let_in(tmp_path: Path):
    app = create_app(runs_dir=tmp_path / "runs", bundled_dir=tmp_path,
                     allowed_hosts=serve.host_names("127.0.0.1", ["Explorer.LAN"]),
                     allowed_origins=["https://tools.example.org"])
    with TestClient(app, base_url="http://explorer.lan:8000") as client:
        assert client.get("/api/models").status_code == 200
        own = {"origin": "http://explorer.lan:8000"}
        assert client.post("/api/train/nope/stop", headers=own).status_code == 404
        tools = {"origin": "https://tools.example.org"}
        assert client.post("/api/train/nope/stop", headers=tools).status_code == 404
        refused(client.post("/api/train/nope/stop", headers={"origin": EVIL}), 403)
    with TestClient(app, base_url=EVIL) as client:
        refused(client.get("/api/models"), 403)


def test_serve_answers_to_its_names_only(tmp_path: Path):
    assert serve.host_names("127.0.0.1") == ["127.0.0.1", "localhost", "::1"]
    exposed = serve.host_names("0.0.0.0")
    assert "testserver" not in exposed and "attacker.example" not in exposed
    app = create_app(bundled_dir=tmp_path, allowed_hosts=exposed)
    for host, status in (("192.168.1.5:8000", 200), ("[fe80::1]", 403), ("attacker.example", 403),
                         ("testserver", 403)):
        with TestClient(app, base_url=f"http://{host}") as client:
            assert client.get("/api/models").status_code == status, host
    with pytest.raises(ConvscopeError, match="--allow-origin"):
        create_app(bundled_dir=tmp_path, allowed_origins=["tools.example.org"])


def test_the_serve_command_passes_its_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    args = build_parser().parse_args(["serve", "--no-browser", "--port", "0", "--allow-host",
                                      "a.lan", "--allow-host", "b.lan", "--allow-origin",
                                      "https://c.example"])
    assert (args.allow_host, args.allow_origin) == (["a.lan", "b.lan"], ["https://c.example"])
    served = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: served.update(
        app=self.config.app, sockets=sockets))
    monkeypatch.setattr(serve, "create_app", lambda *a, **kw: served.update(kw) or
                        create_app(bundled_dir=tmp_path, **kw))
    try:
        args.func(args)
    finally:
        for sock in served.get("sockets", ()):
            sock.close()
    assert served["allowed_hosts"] == ["127.0.0.1", "localhost", "::1", "a.lan", "b.lan"]
    assert served["allowed_origins"] == ["https://c.example"]
    for host, status in (("b.lan", 200), ("testserver", 403), ("attacker.example", 403)):
        with TestClient(served["app"], base_url=f"http://{host}") as client:
            assert client.get("/api/models").status_code == status, host


def test_a_real_server_refuses_rebinding_and_cross_site_sockets(app):
    """Through uvicorn (as `convscope serve` runs): the 403s reach the wire."""
    websockets = pytest.importorskip("websockets.sync.client")
    with served(app) as root:
        base = root.rstrip("/")
        port = int(base.rsplit(":", 1)[1])
        assert httpx.get(f"{base}/api/models").status_code == 200
        rebound = httpx.get(f"{base}/api/models", headers={"host": f"attacker.example:{port}"})
        refused(rebound, 403, "attacker.example")
        url = f"ws://127.0.0.1:{port}/api/train/nope/ws"
        with pytest.raises(Exception, match="403"):
            websockets.connect(url, origin=EVIL, open_timeout=5)
        with websockets.connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=5) as ws:
            assert '"error"' in ws.recv(timeout=5)
