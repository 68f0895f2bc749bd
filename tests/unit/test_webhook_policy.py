"""Which webhook URLs the gateway will call: public addresses, and networks an operator allows."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.jobs.webhook_policy import (
    PinnedRequest,
    WebhookPolicy,
    WebhookRefused,
    parse_networks,
    pinned,
)


def policy(answers: dict[str, list[str]], allowed: str = "") -> WebhookPolicy:
    """A policy whose DNS knows `answers` (its resolver is the seam); IPs resolve to themselves."""

    async def resolve(host: str, port: int) -> list[str]:
        if host in answers:
            return answers[host]
        if host.replace(".", "").isdigit() or ":" in host:
            return [host]
        raise OSError("unknown host")

    return WebhookPolicy(parse_networks(allowed), resolve)


DNS = {
    "hooks.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "localhost": ["127.0.0.1", "::1"],
    "sneaky.example.com": ["93.184.215.14", "10.0.0.5"],  # one bad answer is enough
    "internal.corp": ["10.20.3.4"],
}


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/done?token=x", "http://hooks.example.com:8080/", "http://8.8.8.8/"],
)
async def test_a_public_host_may_be_called_at_the_address_that_was_checked(url: str) -> None:
    assert await policy(DNS).check(url) in {"93.184.215.14", "8.8.8.8"}


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://127.0.0.1:8222/jsz",  # the bus's monitor port
        "http://localhost:8000/v1/keys",
        "http://[::1]/",
        "http://[::ffff:10.0.0.1]/",  # IPv4 inside IPv6
        "http://0.0.0.0/",
        "http://10.1.2.3/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://[fd00::1]/",  # unique local
        "http://[fe80::1]/",  # link local
        "http://224.0.0.1/",  # multicast
        "http://sneaky.example.com/",
        "http://internal.corp/",
        "http://[2001:db8::1]/",  # documentation
        "http://[4000::1]/",  # unassigned
    ],
)
async def test_private_loopback_and_reserved_hosts_are_refused(url: str) -> None:
    with pytest.raises(WebhookRefused) as caught:
        await policy(DNS).check(url)
    assert "private, loopback or reserved" in caught.value.reason


# 2001:0:4136:e378:8000:63bf:f5ff:fffe is a Teredo client at 10.0.0.1 (stored XOR 0xffffffff)
# behind the public relay 65.54.227.120.
@pytest.mark.parametrize(
    "url",
    [
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64: the metadata service
        "http://[64:ff9b::10.0.0.1]/",
        "http://[64:ff9b:1::a9fe:a9fe]/",  # local-use NAT64
        "http://[64:ff9b:1:2::a9fe:a9fe]/",  # local-use NAT64 in a layout that cannot be read
        "http://[2002:a9fe:a9fe::]/",  # 6to4
        "http://[2002:7f00:1::1]/",
        "http://[::a9fe:a9fe]/",  # IPv4-compatible
        "http://[::127.0.0.1]/",
        "http://[::ffff:0:a9fe:a9fe]/",  # IPv4-translated (SIIT)
        "http://[::ffff:169.254.169.254]/",  # IPv4-mapped
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",  # Teredo, private client
        "http://[2001:0:a9fe:a9fe::f7f7:f7f7]/",  # Teredo, relay at the metadata address
        "http://nat64.example.com/",
    ],
)
async def test_ipv6_forms_of_a_refused_ipv4_address_are_refused(url: str) -> None:
    dns = DNS | {"nat64.example.com": ["64:ff9b::a9fe:a9fe"]}  # a DNS64 answer
    with pytest.raises(WebhookRefused) as caught:
        await policy(dns).check(url)
    assert "private, loopback or reserved" in caught.value.reason


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::808:808",  # NAT64 to 8.8.8.8
        "64:ff9b:1::808:808",
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "2001:0:808:808::f7f7:f7f7",  # Teredo: relay and client both 8.8.8.8
    ],
)
async def test_ipv6_forms_of_a_public_ipv4_address_may_be_called(address: str) -> None:
    assert await policy(DNS).check(f"http://[{address}]/hook") == address


async def test_an_allowed_ipv4_network_is_allowed_in_its_ipv6_forms_too() -> None:
    allowing = policy(DNS, allowed="10.20.0.0/16")
    assert await allowing.check("http://[64:ff9b::a14:304]/") == "64:ff9b::a14:304"  # 10.20.3.4
    with pytest.raises(WebhookRefused):
        await allowing.check("http://[64:ff9b::a15:1]/")  # 10.21.0.1


async def test_a_host_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(WebhookRefused, match="does not resolve"):
        await policy(DNS).check("http://nowhere.invalid/")


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/", "file:///etc/passwd", "http:///x"])
async def test_only_http_and_https_with_a_host(url: str) -> None:
    with pytest.raises(WebhookRefused, match="http or https"):
        await policy(DNS).check(url)


async def test_an_operator_can_allow_an_internal_network() -> None:
    allowing = policy(DNS, allowed="10.20.0.0/16, 127.0.0.1")
    await allowing.check("http://internal.corp/hook")
    await allowing.check("http://127.0.0.1:9000/hook")
    with pytest.raises(WebhookRefused):
        await allowing.check("http://10.21.0.1/")  # outside what was allowed


def test_a_mistyped_network_is_an_error_that_names_it() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        parse_networks("127.0.0.0/8, 10.0.0.0/33")
    assert parse_networks(" ") == ()


@pytest.mark.parametrize(
    ("url", "address", "expected"),
    [
        (
            "https://hooks.example.com/done?token=x",
            "93.184.215.14",
            PinnedRequest(
                "https://93.184.215.14/done?token=x",
                {"host": "hooks.example.com"},
                {"sni_hostname": "hooks.example.com"},
            ),
        ),
        (
            "http://user:pw@hooks.example.com:8080/a#frag",
            "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
            PinnedRequest(
                "http://user:pw@[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8080/a",
                {"host": "hooks.example.com:8080"},
            ),
        ),
    ],
)
def test_a_delivery_connects_to_the_checked_address_and_still_names_the_host(
    url: str, address: str, expected: PinnedRequest
) -> None:
    # A name that answers differently after the check (DNS rebinding) changes nothing.
    assert pinned(url, address) == expected


async def test_a_host_name_that_takes_too_long_to_resolve_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def hangs(host: str, port: int) -> list[str]:
        await asyncio.sleep(3600)
        return []

    monkeypatch.setattr("services.gateway.jobs.webhook_policy._RESOLVE_TIMEOUT_S", 0.05)
    with pytest.raises(WebhookRefused, match="does not resolve"):
        await WebhookPolicy(resolve=hangs).check("https://slow.example.com/")
