"""The ``metadata.store`` setting of a cluster broker: ``etcd://host:port[,host:port][/prefix]`` (Kafka's
``zookeeper.connect`` had the same shape: hosts, then an optional chroot under which every key lives)."""

from __future__ import annotations

from moldau.errors import MoldauError

DEFAULT_PREFIX = "/moldau"


def parse_url(url: str) -> tuple[list[tuple[str, int]], str]:
    """`etcd://host:port[,host:port][/prefix]` -> ([(host, port)], prefix).

    >>> parse_url("etcd://h1:2379,h2:2380/x/y")
    ([('h1', 2379), ('h2', 2380)], '/x/y')
    """
    if not url.startswith("etcd://"):
        raise MoldauError(f"metadata.store {url!r} is not an etcd URL: expected etcd://host:port[,host:port][/prefix]")
    rest = url[len("etcd://"):]
    hosts, slash, prefix = rest.partition("/")
    endpoints = []
    for hostport in hosts.split(","):
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise MoldauError(f"metadata.store {url!r}: {hostport!r} is not host:port")
        endpoints.append((host, int(port)))
    prefix = "/" + prefix.strip("/") if slash and prefix.strip("/") else DEFAULT_PREFIX
    return endpoints, prefix


__all__ = ["DEFAULT_PREFIX", "parse_url"]
