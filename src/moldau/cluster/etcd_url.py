"""The ``metadata.store`` setting of a cluster broker: ``etcd://host:port[,host:port][/prefix]`` (Kafka's
``zookeeper.connect`` had the same shape: hosts, then an optional chroot under which every key lives)."""

from __future__ import annotations

import ipaddress
import socket

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


def grpc_targets(endpoints: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The (host, port) pairs to give aetcd, to try in order. Several members become one gRPC target naming
    them all (`ipv4:a:p1,b:p2,...`: aetcd formats it as `host:port`), so the channel's pick_first balancer
    moves to another member when the one in use dies, as etcd's own clientv3 does with its endpoint list.
    Names that do not resolve to IPv4 addresses fall back to one member per try (the first that answers).

    >>> grpc_targets([("127.0.0.1", 1), ("127.0.0.2", 2)])
    [('ipv4:127.0.0.1:1,127.0.0.2', 2)]
    """
    if len(endpoints) < 2:
        return list(endpoints)
    addresses = []
    for host, port in endpoints:
        try:
            ip = str(ipaddress.IPv4Address(host))
        except ValueError:
            try:
                ip = str(socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0])
            except OSError:
                return list(endpoints)
        addresses.append(f"{ip}:{port}")
    last_ip, _, last_port = addresses[-1].rpartition(":")
    return [("ipv4:" + ",".join([*addresses[:-1], last_ip]), int(last_port))]


__all__ = ["DEFAULT_PREFIX", "grpc_targets", "parse_url"]
