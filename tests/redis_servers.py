"""Real Redis servers that a test starts on loopback ports: one server, a Sentinel set, a Cluster.

Each runs in a temporary directory without persistence and is stopped (and its
directory removed) when the test is done; nothing is borrowed, so nothing needs
a key prefix of its own.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

import redis

BIND = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((BIND, 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


_Servers = TypeVar("_Servers", bound="Started")


class Started:
    """Servers used with ``with``: started on entry and stopped on exit, also when starting fails."""

    def start(self: _Servers) -> _Servers:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Servers) -> _Servers:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


class RedisProcess(Started):
    """One ``redis-server`` (or ``valkey-server``) process on a free loopback port."""

    def __init__(self, binary: str = "redis-server", *args: str) -> None:
        self.binary = shutil.which(binary) or binary
        self.args = args
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="fai-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{BIND}:{self.port}/0"

    def client(self) -> redis.Redis:
        args = list(self.args)
        password = args[args.index("--requirepass") + 1] if "--requirepass" in args else None
        return redis.Redis(BIND, self.port, password=password, socket_timeout=5.0,
                           decode_responses=True)

    def start(self) -> RedisProcess:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", BIND, "--save", "",
             "--appendonly", "no", "--dir", self.workdir, *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: bool(self.client().ping()), 10, f"{self.binary} on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


class SentinelSet(Started):
    """A master, one replica and three Sentinels watching them as ``master_name``.

    The master refuses writes while no replica is connected
    (``min-replicas-to-write 1``), as docs/redis.md recommends, so that a master
    the Sentinels have replaced cannot take writes that the new master never sees.
    """

    def __init__(self, master_name: str = "bridge") -> None:
        self.master_name = master_name
        guard = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "2")
        self.master = RedisProcess("redis-server", *guard)
        self.replica = RedisProcess("redis-server", *guard)
        self.sentinels: list[RedisProcess] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"{BIND}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.master_name}/0"

    def start(self) -> SentinelSet:
        self.master.start()
        self.replica.args = (*self.replica.args, "--replicaof", BIND, str(self.master.port))
        self.replica.start()
        wait_for(lambda: self.master.client().info("replication")["connected_slaves"] == 1, 10,
                 "the replica to connect")
        for _ in range(3):
            sentinel = RedisProcess("redis-server")
            conf = f"{sentinel.workdir}/sentinel.conf"
            with open(conf, "w", encoding="utf-8") as f:
                f.write(
                    f"port {sentinel.port}\nbind {BIND}\ndir {sentinel.workdir}\n"
                    f"sentinel monitor {self.master_name} {BIND} {self.master.port} 2\n"
                    f"sentinel down-after-milliseconds {self.master_name} 1000\n"
                    f"sentinel failover-timeout {self.master_name} 5000\n"
                )
            sentinel.proc = subprocess.Popen(
                [sentinel.binary, conf, "--sentinel"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            self.sentinels.append(sentinel)
        for sentinel in self.sentinels:
            wait_for(lambda s=sentinel: self._sees_replica(s), 20, "the Sentinels to find the replica")
        return self

    def _sees_replica(self, sentinel: RedisProcess) -> bool:
        replicas = sentinel.client().execute_command("SENTINEL", "REPLICAS", self.master_name)
        return len(replicas) == 1

    def master_port(self) -> int:
        host_port = self.sentinels[0].client().execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        return int(host_port[1])

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.master):
            server.stop()


class Cluster(Started):
    """A Redis Cluster of ``masters`` masters and no replicas, built with ``redis-cli --cluster create``."""

    def __init__(self, masters: int = 3) -> None:
        # The bus port is given: by default it is the port + 10000, beyond 65535 for a free port.
        self.nodes = [
            RedisProcess("redis-server", "--cluster-enabled", "yes", "--cluster-node-timeout", "5000",
                         "--cluster-port", str(free_port()))
            for _ in range(masters)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{BIND}:{n.port}" for n in self.nodes)

    def start(self) -> Cluster:
        for node in self.nodes:
            node.args = (*node.args, "--cluster-config-file", f"{node.workdir}/nodes.conf")
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"{BIND}:{n.port}" for n in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
        )
        for node in self.nodes:
            wait_for(lambda n=node: n.client().cluster("info")["cluster_state"] == "ok", 20,
                     "the cluster to be ready")
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
