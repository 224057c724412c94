"""Given schemas registered in `_schemas`, when the broker is SIGKILLed and restarted, then the built-in
registry serves the same ids and versions; and two standalone registries sharing one `_schemas` agree."""

from __future__ import annotations

import json
import threading
import time

from moldau.registry import RegistryConfig, RegistryServer
from moldau.testing import running_broker
from tests.fixtures import PROCESS_START_TIMEOUT_S, free_port, wait_for_port
from tests.registry.http import call


def record(name: str, *fields: str) -> str:
    return json.dumps({"type": "record", "name": name,
                       "fields": [{"name": f, "type": "string", "default": ""} for f in fields]})


def state(url: str) -> dict:
    """Everything a client can see: subjects -> versions -> (id, schema), plus configs."""
    result = {}
    for subject in call(url, "GET", "/subjects?deleted=true")[1]:
        for version in call(url, "GET", f"/subjects/{subject}/versions?deleted=true")[1]:
            entry = call(url, "GET", f"/subjects/{subject}/versions/{version}?deleted=true")[1]
            result[(subject, version)] = (entry["id"], entry["schema"])
    result["config"] = call(url, "GET", "/config")[1]
    return result


def test_registry_survives_sigkill_with_same_ids(broker_process, tmp_path):
    registry_port = free_port()
    start = {"schema.registry.listeners": f"http://127.0.0.1:{registry_port}"}
    broker = broker_process(tmp_path / "data", **{k.replace(".", "_"): v for k, v in start.items()})
    wait_for_port(registry_port, PROCESS_START_TIMEOUT_S, broker.process)
    url = f"http://127.0.0.1:{registry_port}"
    ids = []
    for subject, fields in [("a", ("x",)), ("a", ("x", "y")), ("b", ("z",)), ("b", ("z", "w")), ("c", ("x",))]:
        status, body = call(url, "POST", f"/subjects/{subject}/versions", {"schema": record(subject, *fields)})
        assert status == 200, body
        ids.append(body["id"])
    assert call(url, "DELETE", "/subjects/b/versions/1")[0] == 200
    assert call(url, "PUT", "/config", {"compatibility": "FULL"})[0] == 200
    before = state(url)

    broker.kill()
    broker.start()
    wait_for_port(registry_port, PROCESS_START_TIMEOUT_S, broker.process)

    assert state(url) == before
    assert call(url, "GET", "/subjects/b/versions")[1] == [2]  # the soft delete survived too
    status, body = call(url, "POST", "/subjects/d/versions", {"schema": record("d", "q")})
    assert status == 200 and body["id"] == max(ids) + 1  # ids continue, never reused


def test_two_standalone_registries_agree_on_ids():
    with running_broker() as broker:
        config = RegistryConfig(broker.bootstrap_servers, listener="http://127.0.0.1:0")
        with RegistryServer(config) as first, RegistryServer(config) as second:
            urls = [first.url, second.url]
            assert call(first.url, "PUT", "/config", {"compatibility": "NONE"})[0] == 200
            results: dict[tuple[int, int], dict] = {}

            def register(worker: int) -> None:
                for n in range(5):
                    # Every worker registers a schema of its own in a subject all workers write (racing for
                    # versions), and a schema all workers share in a subject of its own (racing for ids).
                    own = record(f"W{worker}N{n}", "x")
                    shared = record(f"Shared{n}", "x")
                    for key, schema, subject in ((0, own, "together"), (1, shared, f"shared-{worker}")):
                        status, body = call(urls[worker % 2], "POST", f"/subjects/{subject}/versions",
                                            {"schema": schema})
                        assert status == 200, body
                        results[(worker, n * 2 + key)] = {"schema": schema, "id": body["id"]}

            workers = [threading.Thread(target=register, args=(w,)) for w in range(4)]
            for thread in workers:
                thread.start()
            for thread in workers:
                thread.join(120)
            assert len(results) == 40

            by_schema: dict[str, set[int]] = {}
            for entry in results.values():
                by_schema.setdefault(entry["schema"], set()).add(entry["id"])
            assert all(len(ids) == 1 for ids in by_schema.values()), "one schema, one id, whichever instance"
            assert len({next(iter(ids)) for ids in by_schema.values()}) == len(by_schema), "distinct ids"

            # Both instances read the same `_schemas`: once each has caught up, both serve the same state.
            deadline = time.monotonic() + 30
            while state(first.url) != state(second.url) and time.monotonic() < deadline:
                time.sleep(0.05)  # the other instance's reader applies records asynchronously
            assert state(first.url) == state(second.url)
            assert call(first.url, "GET", "/subjects/together/versions")[1] == list(range(1, 21))
            for schema, ids in by_schema.items():
                got = call(second.url, "GET", f"/schemas/ids/{next(iter(ids))}")[1]
                assert json.loads(got["schema"]) == json.loads(schema)


def test_standalone_registry_rides_out_a_broker_restart(broker_process, tmp_path):
    broker = broker_process(tmp_path / "data")
    config = RegistryConfig(broker.bootstrap_servers, listener="http://127.0.0.1:0", replication_factor=1)
    with RegistryServer(config) as server:
        url = server.url
        first = call(url, "POST", "/subjects/s/versions", {"schema": record("s", "a")})[1]["id"]
        broker.kill()
        assert call(url, "GET", f"/schemas/ids/{first}")[0] == 200  # reads are served from memory meanwhile
        broker.start()
        status, body = call(url, "POST", "/subjects/s/versions", {"schema": record("s", "a", "b")})
        assert status == 200, body
        assert body["id"] == first + 1
        assert call(url, "GET", "/subjects/s/versions")[1] == [1, 2]
