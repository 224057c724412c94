"""KIP-507 under `connect.protocol=sessioned`: the leader distributes a session key through the config topic,
and the internal `POST /connectors/{c}/tasks` accepts only requests signed with it; followers forward their
connectors' task configs to the leader that way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.request

from tests.connect.connect_fixtures import WorkerProcess, create_topic, distributed_props, rest
from tests.connect.test_cooperative_rebalance import status_history, task_owners
from tests.fixtures import unique_topic, wait_until


def post_tasks(url: str, name: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict | None]:
    request = urllib.request.Request(f"{url}/connectors/{name}/tasks", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def session_key(bootstrap: str, config_topic: str) -> dict | None:
    """The last `session-key` record of the config topic (status_history reads any compacted topic)."""
    records = status_history(bootstrap, config_topic, raw=True).get("session-key")
    return records[-1] if records else None


def test_internal_requests_need_the_session_keys_signature(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap_servers
    group = unique_topic("kip507")
    props = distributed_props(bootstrap, group)
    leader = WorkerProcess(tmp_path, "leader", props).start()
    follower = WorkerProcess(tmp_path, "follower", props)
    try:
        topic = create_topic(bootstrap, unique_topic("kip507"))
        (tmp_path / "in.txt").write_text("x\n")
        assert rest(leader.url, "POST", "/connectors", {"name": "c0", "config": {
            "connector.class": "FileStreamSource", "file": str(tmp_path / "in.txt"), "topic": topic}})[0] == 201
        wait_until(lambda: task_owners(leader.url, "c0", 1), 60, "c0 running")
        record = wait_until(lambda: session_key(bootstrap, f"{group}-configs"), 30, "a session key in the config topic")
        # Kafka's record: {"key": base64, "algorithm": "HmacSHA256", "creation-timestamp": ms}.
        assert set(record) == {"key", "algorithm", "creation-timestamp"} and record["algorithm"] == "HmacSHA256"
        key = base64.b64decode(record["key"])
        assert len(key) == 32 and record["creation-timestamp"] > 0

        body = json.dumps([{"task.class": "moldau.connect.connectors.file.FileStreamSourceTask",
                            "file": str(tmp_path / "in.txt"), "topic": topic, "batch.size": "7"}]).encode()
        status, error = post_tasks(leader.url, "c0", body, {})
        assert (status, error["message"]) == (400, "Internal request missing required signature")
        wrong = base64.b64encode(hmac.new(b"not the key", body, hashlib.sha256).digest()).decode()
        status, error = post_tasks(leader.url, "c0", body, {"X-Connect-Authorization": wrong,
                                                             "X-Connect-Request-Signature-Algorithm": "HmacSHA256"})
        assert (status, error["message"]) == (403, "Internal request contained invalid signature.")
        right = base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()
        status, _ = post_tasks(leader.url, "c0", body, {"X-Connect-Authorization": right,
                                                        "X-Connect-Request-Signature-Algorithm": "HmacSHA256"})
        assert status == 204
        wait_until(lambda: rest(leader.url, "GET", "/connectors/c0/tasks")[1][0]["config"].get("batch.size") == "7",
                   30, "the signed task configs written")

        # A follower's connectors: their task configs reach the config topic through the leader, signed.
        follower.start()
        for name in ("c1", "c2"):
            assert rest(follower.url, "POST", "/connectors", {"name": name, "config": {
                "connector.class": "FileStreamSource", "file": str(tmp_path / "in.txt"), "topic": topic}})[0] == 201
        for name in ("c1", "c2"):
            wait_until(lambda name=name: task_owners(follower.url, name, 1), 60, f"{name} running")
        forwarded = wait_until(lambda: "forwarded 1 task configs" in follower.log_path.read_text(), 30,
                               "the follower forwarding task configs to the leader")
        assert forwarded and "invalid signature" not in follower.log_path.read_text()
    finally:
        follower.stop()
        leader.stop()


def test_eager_workers_accept_unsigned_internal_requests(group_broker, tmp_path):
    bootstrap = group_broker.bootstrap_servers
    props = {**distributed_props(bootstrap, unique_topic("kip507-eager")), "connect.protocol": "eager"}
    worker = WorkerProcess(tmp_path, "eager", props).start()
    try:
        topic = create_topic(bootstrap, unique_topic("kip507-eager"))
        (tmp_path / "in.txt").write_text("x\n")
        rest(worker.url, "POST", "/connectors", {"name": "c", "config": {
            "connector.class": "FileStreamSource", "file": str(tmp_path / "in.txt"), "topic": topic}})
        wait_until(lambda: task_owners(worker.url, "c", 1), 60, "running")
        body = json.dumps([{"task.class": "moldau.connect.connectors.file.FileStreamSourceTask",
                            "file": str(tmp_path / "in.txt"), "topic": topic}]).encode()
        assert post_tasks(worker.url, "c", body, {})[0] == 204  # no session keys without `sessioned`
        assert post_tasks(worker.url, "missing", body, {})[0] == 404
    finally:
        worker.stop()
