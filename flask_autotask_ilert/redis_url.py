"""Which Redis ``REDIS_URL`` names, and how to connect to it: one server, Sentinel, Cluster or memory.

The forms are those of the ``limits`` package, so the flood limit counts on the
same Redis as the store:

- ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's own URL forms);
- ``redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/db]``:
  the master a set of Sentinels names, found again after a failover;
- ``redis+cluster://[:password@]host:port[,host:port...]``: a Redis Cluster,
  reached through any of the nodes named;
- ``memory://``: an in-process store (fakeredis), for one process only: a demo
  or a test. It has to be asked for: an unset URL is an error, because two web
  processes would each get a store of their own and every command would read an
  empty one.

A password never leaves this module except inside a client: ``describe()`` is
what a log line or the worker's start line may show.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import redis

from .errors import ConfigurationError

MEMORY = "memory"
SINGLE = "redis"
SENTINEL = "sentinel"
CLUSTER = "cluster"

_SCHEMES = {"redis": SINGLE, "rediss": SINGLE, "unix": SINGLE, "memory": MEMORY,
            "redis+sentinel": SENTINEL, "redis+cluster": CLUSTER}
_MEMORY_EXTRA = 'pip install "flask-autotask-ilert[memory]"'
_SENTINEL_PORT = 26379
_REDIS_PORT = 6379

#: Timeouts of every connection: a Redis that hangs must answer a callout with a 503 soon,
#: not hold a web worker.
CONNECTION_OPTIONS: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}

_HASH_TAG = re.compile(r"\{[^}]+\}")


@dataclass(frozen=True)
class RedisTarget:
    """A parsed ``REDIS_URL``: what kind of Redis, where, and the credentials to reach it."""

    kind: str
    url: str = field(repr=False)  # it may hold the password
    hosts: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """Where this Redis is, for people: the URL with its password hidden."""
        if self.kind == SINGLE:
            return _hide_password(self.url)
        if self.kind == MEMORY:
            return "memory:// (an in-process store: this process only)"
        hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
        auth = ":***@" if self.password else ""
        if self.kind == SENTINEL:
            where = f"redis+sentinel://{auth}{hosts}/{self.service}/{self.db}"
            return f"{where} (Sentinel, master {self.service!r})"
        return f"redis+cluster://{auth}{hosts} (Cluster)"

    def key_prefix(self, prefix: str) -> str:
        """The prefix the keys get: on a Cluster, hash-tagged, so that all keys share one slot.

        A Lua script may only touch keys of one hash slot, and the scripts of a
        ticket touch its hash, its queue and the shared sets together. Tagging
        the whole prefix (``autotask-ilert:`` becomes ``{autotask-ilert}:``) puts
        every key of the bridge in one slot; a prefix that already holds a tag
        is kept as it is. On other kinds the prefix is used unchanged, so the
        keys of an existing deployment stay where they are.
        """
        if self.kind != CLUSTER or _HASH_TAG.search(prefix):
            return prefix
        stem = prefix.rstrip(":")
        return "{" + (stem or "autotask-ilert") + "}" + prefix[len(stem):]

    def connector(self) -> Callable[[], redis.Redis]:
        """A function that makes a client, called once per process (the store calls it after a fork)."""
        if self.kind == SINGLE:
            url = self.url
            return lambda: redis.Redis.from_url(url, health_check_interval=30, **CONNECTION_OPTIONS)
        if self.kind == SENTINEL:
            return self._sentinel_master
        if self.kind == CLUSTER:
            options = {**self._auth(), **CONNECTION_OPTIONS}
            hosts = self.hosts

            def cluster() -> redis.Redis:
                from redis.cluster import ClusterNode, RedisCluster

                nodes = [ClusterNode(h, p) for h, p in hosts]  # type: ignore[no-untyped-call]
                client = RedisCluster(startup_nodes=nodes, **options)
                # RedisCluster offers every command the store uses, with the same signatures.
                return cast(redis.Redis, client)

            return cluster
        fakeredis = memory_module()
        server = fakeredis.FakeServer()
        return lambda: cast(redis.Redis, fakeredis.FakeRedis(server=server))

    def _sentinel_master(self) -> redis.Redis:
        from redis.sentinel import Sentinel

        auth = self._auth()
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(self.hosts), sentinel_kwargs={**auth, **CONNECTION_OPTIONS}, **auth, **CONNECTION_OPTIONS)
        assert self.service is not None
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            self.service, db=self.db, health_check_interval=30)
        return master

    def _auth(self) -> dict[str, Any]:
        """The credentials of the URL; on a Sentinel URL they are those of the Sentinels and
        of the master alike, as ``limits`` uses them."""
        return {"username": self.username, "password": self.password}

    def limits_uri(self) -> tuple[str, dict[str, Any]]:
        """The same Redis as a ``limits`` storage URL, and the options that go with it.

        ``limits`` reads a Sentinel URL's whole path as the master's name, so the
        db travels as an option; its replicas are not read, since a replica may
        lag behind the counts.
        """
        options: dict[str, Any] = dict(CONNECTION_OPTIONS)
        if self.kind == SENTINEL:
            user = _quote(self.username) if self.username else ""
            auth = f"{user}:{_quote(self.password)}@" if self.password else ""
            hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
            options.update(db=self.db, use_replicas=False)
            return f"redis+sentinel://{auth}{hosts}/{self.service}", options
        if self.url.startswith("unix://"):
            return "redis+unix://" + self.url[len("unix://"):], options
        return self.url, options


def parse(url: str | None) -> RedisTarget:
    """The Redis a ``REDIS_URL`` names; a ConfigurationError says what is wrong with it."""
    if not url:
        raise ConfigurationError(
            "AUTOTASK_ILERT_REDIS_URL is not set: set it to your Redis (redis://host:6379/0, "
            "redis+sentinel://..., redis+cluster://...), or to memory:// for an in-process store "
            "in a single-process demo or test")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise ConfigurationError(
            f"AUTOTASK_ILERT_REDIS_URL: unknown scheme {scheme or '(none)'!r}; use one of "
            + ", ".join(f"{s}://" for s in _SCHEMES))
    if kind == SINGLE:
        try:
            redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ConfigurationError(f"AUTOTASK_ILERT_REDIS_URL: {_hide_password(str(exc))}") from None
        return RedisTarget(SINGLE, url)
    if kind == MEMORY:
        memory_module()
        return RedisTarget(MEMORY, url)
    return _parse_many(kind, url)


def _parse_many(kind: str, url: str) -> RedisTarget:
    rest = url.partition("://")[2].partition("?")[0]
    userinfo, _, location = rest.rpartition("@")
    username, _, password = userinfo.partition(":")
    where, _, path = location.partition("/")
    default_port = _SENTINEL_PORT if kind == SENTINEL else _REDIS_PORT
    hosts = tuple(_host(part, default_port) for part in where.split(",") if part)
    if not hosts:
        raise ConfigurationError(f"AUTOTASK_ILERT_REDIS_URL: name at least one host:port ({_form(kind)})")
    parts = [p for p in path.split("/") if p]
    service, db = None, 0
    if kind == SENTINEL:
        if not parts or len(parts) > 2:
            raise ConfigurationError(
                f"AUTOTASK_ILERT_REDIS_URL: name the master after the hosts ({_form(kind)})")
        service = unquote(parts[0])
        db = _db(parts[1]) if len(parts) == 2 else 0
    elif len(parts) > 1 or (parts and _db(parts[0]) != 0):
        raise ConfigurationError("AUTOTASK_ILERT_REDIS_URL: a Redis Cluster has only db 0; "
                                 f"name no db ({_form(kind)})")
    return RedisTarget(kind, url, hosts, service, db,
                       unquote(username) or None, unquote(password) or None)


def _host(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    try:
        return host.strip("[]"), int(port) if port else default_port
    except ValueError:
        raise ConfigurationError(f"AUTOTASK_ILERT_REDIS_URL: {text!r} is not host:port") from None


def _db(text: str) -> int:
    if not text.isdigit():
        raise ConfigurationError(f"AUTOTASK_ILERT_REDIS_URL: the db must be a number, not {text!r}")
    return int(text)


def _form(kind: str) -> str:
    if kind == SENTINEL:
        return "redis+sentinel://[:password@]host:port[,host:port...]/<master name>[/db]"
    return "redis+cluster://[:password@]host:port[,host:port...]"


def _quote(value: str | None) -> str:
    return quote(value or "", safe="")


def _hide_password(url: str) -> str:
    """``redis://:secret@host/0`` as ``redis://:***@host/0``; a ``password=`` query value too."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"://[^@/]*@", "://***@", url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        # a lone part before "@" is hidden too: it is often a password written without its colon
        netloc = f"{user}:***@{hostport}" if colon else f"***@{hostport}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def memory_module() -> Any:
    """fakeredis, imported only when ``memory://`` is asked for: it is an extra, not a dependency."""
    try:
        return importlib.import_module("fakeredis")
    except ImportError:
        raise ConfigurationError(
            f"AUTOTASK_ILERT_REDIS_URL=memory:// needs the in-process store: {_MEMORY_EXTRA}"
        ) from None
