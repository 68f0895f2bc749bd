"""API keys and tenant isolation on the real stack (keys issued with `tokenbus keys`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import Stack, issue_key, keys_command

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"
HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def anonymous(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as client:
        yield client


def client_for(stack: Stack, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/v1/conversations"),
        ("POST", "/v1/conversations"),
        ("GET", "/v1/usage"),
        ("POST", "/v1/jobs"),
        ("GET", "/v1/jobs/anything"),
    ],
)
async def test_every_api_route_wants_a_key(
    anonymous: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await anonymous.request(method, path, json=HELLO)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "missing_api_key"


async def test_health_needs_no_key(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer tb_" + "x" * 43,  # well-formed, never issued
        "Bearer not-a-key",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer tb_" + "y" * 5000,  # oversized
    ],
)
async def test_bad_keys_get_401_without_an_echo(anonymous: httpx.AsyncClient, header: str) -> None:
    response = await anonymous.get("/v1/models", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    presented = header.partition(" ")[2]
    assert not presented or presented[:12] not in response.text


async def test_control_characters_in_the_key_get_a_clean_4xx(stack: Stack) -> None:
    host, port = stack.gateway_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tb_\x01\x7fabc\r\n"
        b"Connection: close\r\n\r\n"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    status = int(status_line.split()[1])
    assert 400 <= status < 500, status_line


async def test_a_revoked_key_stops_working_at_once(stack: Stack) -> None:
    key_id, key = issue_key(stack, tenant(), "ada")
    async with client_for(stack, key) as http:
        assert (await http.get("/v1/models")).status_code == 200
        revoked = keys_command(stack, "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        response = await http.get("/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    listed = keys_command(stack, "list").stdout
    assert key_id in listed
    assert "revoked" in listed
    assert key not in listed  # the list never shows a key, only its hint


async def test_keys_are_stored_hashed(stack: Stack) -> None:
    import nats

    _, key = issue_key(stack, tenant(), "ada")
    nc = await nats.connect(stack.nats_url)
    try:
        kv = await nc.jetstream().key_value("TOKENBUS_KEYS")
        for name in await kv.keys():
            entry = await kv.get(name)
            assert key not in name
            assert entry.value is None or key.encode() not in entry.value
    finally:
        await nc.close()


async def test_another_tenant_sees_nothing_of_a_conversation(stack: Stack) -> None:
    _, key_a = issue_key(stack, tenant(), "ada")
    _, key_b = issue_key(stack, tenant(), "bob")
    async with client_for(stack, key_a) as alice, client_for(stack, key_b) as bob:
        created = await alice.post("/v1/conversations", json={})
        conversation_id = created.json()["id"]
        async with alice.stream(
            "POST",
            f"/v1/conversations/{conversation_id}/messages",
            json={"content": "Count to fifty.", "max_tokens": 200},
        ) as running:
            assert running.status_code == 200
            async for line in running.aiter_lines():
                if line.startswith("event: delta"):
                    break
            base = f"/v1/conversations/{conversation_id}"
            attempts = [
                await bob.get(base),
                await bob.get(f"{base}/stream"),
                await bob.post(f"{base}/cancel"),
                await bob.patch(base, json={"title": "mine now"}),
                await bob.post(f"{base}/messages", json={"content": "hello"}),
                await bob.delete(base),
            ]
            for response in attempts:
                assert response.status_code == 404, (response.request.url, response.text)
                assert response.json()["error"]["code"] == "conversation_not_found"
            listed = (await bob.get("/v1/conversations")).json()["data"]
            assert conversation_id not in {c["id"] for c in listed}
        # Alice still has it, untouched by Bob's attempts.
        mine = (await alice.get(f"/v1/conversations/{conversation_id}")).json()
        assert mine["title"] != "mine now"
        assert conversation_id in {
            c["id"] for c in (await alice.get("/v1/conversations")).json()["data"]
        }


async def test_another_tenant_cannot_read_a_job(stack: Stack) -> None:
    _, key_a = issue_key(stack, tenant(), "ada")
    _, key_b = issue_key(stack, tenant(), "bob")
    async with client_for(stack, key_a) as alice, client_for(stack, key_b) as bob:
        job = (await alice.post("/v1/jobs", json=HELLO)).json()
        assert (await alice.get(f"/v1/jobs/{job['id']}")).status_code == 200
        response = await bob.get(f"/v1/jobs/{job['id']}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


async def test_the_same_idempotency_key_in_two_tenants_starts_two_turns(stack: Stack) -> None:
    _, key_a = issue_key(stack, tenant(), "ada")
    _, key_b = issue_key(stack, tenant(), "bob")
    headers = {"Idempotency-Key": f"shared-{uuid.uuid4().hex}"}
    async with client_for(stack, key_a) as alice, client_for(stack, key_b) as bob:
        first = await alice.post("/v1/chat/completions", json=HELLO, headers=headers)
        second = await bob.post("/v1/chat/completions", json=HELLO, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] != second.json()["id"]


async def test_usage_is_reported_per_tenant(stack: Stack) -> None:
    _, key_a = issue_key(stack, tenant(), "ada")
    _, key_b = issue_key(stack, tenant(), "bob")
    async with client_for(stack, key_a) as alice, client_for(stack, key_b) as bob:
        answer = (await alice.post("/v1/chat/completions", json=HELLO)).json()
        expected = answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
        async with asyncio.timeout(30):
            while True:
                mine = (await alice.get("/v1/usage", params={"group_by": "user"})).json()
                total = mine["total"]
                if total["input_tokens"] + total["output_tokens"] >= expected:
                    break
                await asyncio.sleep(0.2)
        theirs = (await bob.get("/v1/usage", params={"group_by": "user"})).json()
    assert total["input_tokens"] + total["output_tokens"] == expected
    assert [row["user"] for row in mine["data"]] == ["ada"]
    assert theirs["data"] == []
    assert theirs["total"]["input_tokens"] == 0
