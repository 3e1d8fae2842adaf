"""Helpers shared by the HTTP tests: the contract's error body, and posting a notify."""

from __future__ import annotations

from typing import Any

import httpx


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an error answer of the contract's shape; returns its details."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert list(body) == ["error"], body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["details"], dict)
    return body["error"]["details"]


async def post_notify(
    backend: Any, body: bytes, signature: str | bytes | None, channel: str = "wechat"
) -> httpx.Response:
    """A gateway notify to ``backend`` (anything with a ``url``), as the gateway sends it."""
    headers: dict[str, str | bytes] = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Sandbox-Signature"] = signature
    async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
        return await http.post(f"/api/v1/gateway/notify/{channel}", content=body, headers=headers)
