"""A real 3-node JetStream cluster of local nats-server processes, for failover tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext

from services.runtime.embedded_nats import find_nats_server, free_port, wait_for_port

__all__ = [
    "ClusterNode",
    "NatsCluster",
    "consumer_leader",
    "kill_stream_leader",
    "move_leader",
    "running_cluster",
    "stream_leader",
]

HOST = "127.0.0.1"


@dataclass
class ClusterNode:
    """One nats-server of the cluster: client, route and monitor ports, its own store."""

    name: str
    store_dir: Path
    port: int = field(default_factory=free_port)
    cluster_port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def route(self) -> str:
        return f"nats://{HOST}:{self.cluster_port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self, cluster_name: str, routes: list[str]) -> list[str]:
        return [
            str(find_nats_server()),
            "--name", self.name,
            "-js",
            "-sd", str(self.store_dir),
            "-a", HOST,
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "--cluster_name", cluster_name,
            "--cluster", self.route,
            "--routes", ",".join(routes),
        ]  # fmt: skip

    def start(self, cluster_name: str, routes: list[str]) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = (self.store_dir.parent / f"{self.name}.log").open("ab")
        with log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                self.command(cluster_name, routes), stdout=log, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL: no goodbye to the cluster, no flush, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def jsz(self) -> dict[str, object]:
        url = f"http://{HOST}:{self.monitor_port}/jsz"
        with urllib.request.urlopen(url, timeout=2) as response:
            found: dict[str, object] = json.load(response)
            return found


@dataclass
class NatsCluster:
    nodes: list[ClusterNode]

    @property
    def url(self) -> str:
        """Every client URL, comma-separated, as TOKENBUS_NATS_URL takes it."""
        return ",".join(node.url for node in self.nodes)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, name: str) -> ClusterNode:
        return next(node for node in self.nodes if node.name == name)

    def meta_leader(self) -> str | None:
        """The JetStream meta leader if every live node agrees on one, else None."""
        leaders: set[object] = set()
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                meta = node.jsz().get("meta_cluster")
            except (OSError, urllib.error.URLError, ValueError):
                return None
            if not isinstance(meta, dict):
                return None
            leaders.add(meta.get("leader"))
        if len(leaders) != 1:
            return None
        leader = leaders.pop()
        return leader if isinstance(leader, str) and leader else None

    def wait_for_meta_leader(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while (leader := self.meta_leader()) is None:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"nats-server {node.name} exited: see {node.name}.log")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no JetStream meta leader after {timeout}s")
            time.sleep(0.2)
        return leader

    def kill(self, name: str) -> None:
        self.node(name).kill()


@contextlib.contextmanager
def running_cluster(
    base_dir: Path, size: int = 3, name: str = "tokenbus-test", timeout: float = 60.0
) -> Iterator[NatsCluster]:
    """Start `size` JetStream servers routed to each other; stop every one afterwards."""
    cluster = NatsCluster([ClusterNode(f"n{i}", base_dir / f"n{i}") for i in range(1, size + 1)])
    routes = [node.route for node in cluster.nodes]
    try:
        for node in cluster.nodes:
            node.start(name, routes)
        for node in cluster.nodes:
            wait_for_port(HOST, node.port, timeout)
        cluster.wait_for_meta_leader(timeout)
        yield cluster
    finally:
        for node in cluster.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        for node in cluster.nodes:
            if node.alive and node.process is not None:  # stop() gave up: never leave one behind
                node.process.kill()
                node.process.wait()


async def stream_leader(js: JetStreamContext, stream: str) -> str:
    """The server name leading `stream` (its Raft group), as the cluster sees it now."""
    info = await js.stream_info(stream)
    if info.cluster is None or not info.cluster.leader:
        raise RuntimeError(f"{stream} has no leader (is it replicated on a cluster?)")
    return info.cluster.leader


async def kill_stream_leader(js: JetStreamContext, cluster: NatsCluster, stream: str) -> str:
    """SIGKILL the server leading `stream`; returns its name."""
    leader = await stream_leader(js, stream)
    cluster.kill(leader)
    return leader


async def consumer_leader(js: JetStreamContext, stream: str, consumer: str) -> str:
    info = await js.consumer_info(stream, consumer)
    if info.cluster is None or not info.cluster.leader:
        raise RuntimeError(f"{stream}/{consumer} has no leader")
    return str(info.cluster.leader)


async def move_leader(
    nc: Client, stream: str, to: str, consumer: str | None = None, timeout: float = 30.0
) -> None:
    """Make server `to` lead `stream` (or one of its consumers): a step-down with a preferred
    successor. Puts several leaders on one node, so that killing it fails them all over."""
    js = nc.jetstream()
    api = f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}"
    if consumer is not None:
        api = f"$JS.API.CONSUMER.LEADER.STEPDOWN.{stream}.{consumer}"

    async def leader() -> str | None:
        try:
            if consumer is None:
                return await stream_leader(js, stream)
            return await consumer_leader(js, stream, consumer)
        except RuntimeError:  # just made: no leader elected yet
            return None

    deadline = asyncio.get_running_loop().time() + timeout
    answer = ""
    while (current := await leader()) != to:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{api}: leader is still {current}, not {to} ({answer})")
        if current is not None:
            # Refused while `to` still catches up as a new peer ("not known"): ask again.
            payload = json.dumps({"placement": {"preferred": to}}).encode()
            answer = (await nc.request(api, payload, timeout=5)).data.decode()
        await asyncio.sleep(0.5)  # the election that follows
