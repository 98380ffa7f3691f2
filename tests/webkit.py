"""What the admin-page HTTP tests share: a settable clock, cheap Argon2, an ASGI
client and the CSRF token of a page. Import ``cheap_argon2`` into a test module to use it."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from argon2 import PasswordHasher

from dlp_gateway.store import users as users_module


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch):
    """Still Argon2id, with the cost turned down so that the files run in seconds."""
    monkeypatch.setattr(users_module, "_HASHER",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin.test")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "page has no csrf_token"
    return found.group(1)
