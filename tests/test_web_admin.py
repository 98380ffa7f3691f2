"""HTTP tests of the admin page: a real Gateway (SQLite + spool in tmp_path) behind
the Starlette app, driven by httpx over ASGITransport."""

from __future__ import annotations

import datetime as dt
import io
import re
import sqlite3
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import httpx
import pytest
import pyzipper

from dlp_gateway.approval import run_expiry
from dlp_gateway.config import load_config
from dlp_gateway.gateway import Gateway
from dlp_gateway.store.staff import StaffStore
from dlp_gateway.web.app import create_app
from tests.webkit import Clock, cheap_argon2, client_for, csrf_of  # noqa: F401

MY_NUMBER = "123456789018"  # passes the check digit
PASSWORDS = {
    "ciso@city.example": "ciso-password",
    "head@city.example": "head-password",
    "head2@city.example": "head2-password",
    "staff@city.example": "staff-password",
    "ops@city.example": "ops-password",
}


DEPT = "介護保険課"


@pytest.fixture
def gateway(tmp_path, database_url):
    patterns = tmp_path / "patterns"
    patterns.mkdir()
    (patterns / "policy.toml").write_text(
        '[[rules]]\nid = "two_person"\nmetric = "records"\nmin = 100\naction = "hold"\n'
        'approver_role = "section_head"\napprovals_required = 2\nreason = "x"\n',
        encoding="utf-8",
    )
    config = load_config(
        data_dir=tmp_path / "data", lockout_failures=3, lockout_minutes=15,
        session_idle_minutes=30, patterns_dir=patterns, database_url=database_url,
    )
    gw = Gateway(config)
    gw.users.add("ciso@city.example", "ciso", PASSWORDS["ciso@city.example"])
    gw.users.add("head@city.example", "section_head", PASSWORDS["head@city.example"], DEPT)
    gw.users.add("head2@city.example", "section_head", PASSWORDS["head2@city.example"], DEPT,
                 deputy=True)
    gw.users.add("staff@city.example", "section_head", PASSWORDS["staff@city.example"], DEPT)
    gw.users.add("ops@city.example", "operator", PASSWORDS["ops@city.example"])
    StaffStore(gw.db).add("staff@city.example", "職員 一郎", DEPT)  # the usual sender
    yield gw
    gw.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(gateway, clock):
    return create_app(gateway, clock=clock)


new_client = client_for


@pytest.fixture
async def client(app):
    async with new_client(app) as c:
        yield c


def mail(subject="名簿の送付", body=None, attachment="名簿.xlsx", sender="staff@city.example",
         to="center@care.example") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body or f"お世話になります。\n個人番号 {MY_NUMBER[:4]}-{MY_NUMBER[4:8]}-"
                    f"{MY_NUMBER[8:]} の方の件です。\n")
    if attachment:
        msg.add_attachment("被保険者番号,氏名\n12345678,山田太郎\n".encode(),
                           maintype="application", subtype="octet-stream", filename=attachment)
    return msg.as_bytes()


def hold(gw, subject="名簿の送付", role="section_head", rules=("many_records",),
         sender="staff@city.example", recipients=("center@care.example",), counts=None,
         raw=None):
    raw = raw or mail(subject, sender=sender, to=recipients[0])
    return gw.held.add(
        raw, sender=sender, recipients=list(recipients), subject=subject,
        reasons=["個人情報 7,203人分（10人分以上）"], rules=list(rules), approver_role=role,
        counts=counts or {"my_number": 3, "insured_number": 7203, "records": 7203},
        findings=[
            {"type": "insured_number", "part": "名簿.xlsx", "location": "名簿.xlsx!Sheet1!A2",
             "masked": "****5678", "confidence": 0.95},
            {"type": "my_number", "part": "body", "location": "body", "masked": "********9018",
             "confidence": 0.99},
        ],
    )


async def login(client, email, password=None, follow=False):
    page = await client.get("/login")
    token = csrf_of(page.text)
    return await client.post(
        "/login", data={"email": email, "password": password or PASSWORDS[email],
                        "csrf_token": token},
        follow_redirects=follow,
    )


async def csrf(client, path="/held") -> str:
    return csrf_of((await client.get(path)).text)


def events(gw, **kw):
    return [e.event for e in gw.audit.entries(**kw)]


# -- login, sessions, lock-out ----------------------------------------------------------


async def test_login_ok_sets_strict_cookie_and_audits(client, gateway):
    response = await login(client, "head@city.example")
    assert response.status_code == 303
    assert response.headers["location"] == "/held"
    cookie = next(v for k, v in response.headers.multi_items()
              if k == "set-cookie" and v.startswith("dlp_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie  # plain http in this test
    assert (await client.get("/held")).status_code == 200
    assert events(gateway) == ["login"]


async def test_login_without_form_token_gets_no_session(app, gateway):
    # issue 10 (login CSRF): this used to log a script in; the old behaviour was the bug
    async with new_client(app) as c:
        r = await c.post("/login", data={"email": "head@city.example",
                                         "password": PASSWORDS["head@city.example"]})
        assert r.status_code == 403 and "dlp_session" not in c.cookies
        assert events(gateway) == []


async def test_login_wrong_password(client, gateway):
    response = await login(client, "head@city.example", "nope-nope")
    assert response.status_code == 401
    assert "正しくありません" in response.text
    assert "dlp_session" not in client.cookies
    assert events(gateway) == ["login_failed"]


async def test_cross_site_login_refused(client):
    r = await client.post("/login", data={"email": "head@city.example",
                                          "password": PASSWORDS["head@city.example"]},
                          headers={"sec-fetch-site": "cross-site"})
    assert r.status_code == 403


async def test_lockout_after_failures(client, gateway, clock):
    for _ in range(3):
        assert (await login(client, "head@city.example", "bad-password")).status_code == 401
    locked = await login(client, "head@city.example")
    assert locked.status_code == 429
    assert "ロック" in locked.text
    clock.advance(minutes=16)
    assert (await login(client, "head@city.example")).status_code == 303
    assert events(gateway).count("login_failed") == 4


async def test_pages_need_session(client):
    for path in ("/held", "/held/whatever", "/audit", "/audit.csv", "/held?status=released"):
        r = await client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login")
    r = await client.post("/held/x/release", data={"mode": "as_is", "csrf_token": "x"})
    assert r.status_code == 401 and "ログイン" in r.text


async def test_login_returns_to_requested_page(client, gateway):
    held = hold(gateway)
    r = await client.get(f"/held/{held.id}")
    assert r.headers["location"] == f"/login?next=%2Fheld%2F{held.id}"
    page = await client.get(r.headers["location"])
    r = await client.post("/login", data={"email": "head@city.example",
                                          "password": PASSWORDS["head@city.example"],
                                          "csrf_token": csrf_of(page.text),
                                          "next": f"/held/{held.id}"})
    assert r.headers["location"] == f"/held/{held.id}"
    page = await client.get("/login")
    r = await client.post("/login", data={"email": "head@city.example",
                                          "password": PASSWORDS["head@city.example"],
                                          "csrf_token": csrf_of(page.text),
                                          "next": "//evil.example/"})
    assert r.headers["location"] == "/held"


async def test_idle_timeout(client, clock):
    await login(client, "head@city.example")
    clock.advance(minutes=29)
    assert (await client.get("/held")).status_code == 200
    clock.advance(minutes=29)  # 29 minutes since the last request: still alive
    assert (await client.get("/held")).status_code == 200
    clock.advance(minutes=31)
    assert (await client.get("/held")).status_code == 303


async def test_logout_invalidates_session_server_side(client, gateway):
    await login(client, "head@city.example")
    old_cookie = client.cookies["dlp_session"]
    r = await client.post("/logout", data={"csrf_token": await csrf(client)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    client.cookies.set("dlp_session", old_cookie)  # replaying the old cookie must not work
    assert (await client.get("/held")).status_code == 303
    assert events(gateway) == ["login", "logout"]


async def test_disabled_user_session_ends(client, gateway):
    await login(client, "head@city.example")
    gateway.users.disable("head@city.example")
    assert (await client.get("/held")).status_code == 303


# -- pages, headers, escaping, masking --------------------------------------------------


async def test_security_headers(client):
    r = await client.get("/login")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in r.text


async def test_list_shows_why_role_and_wait(client, gateway, clock):
    hold(gateway, role="ciso", rules=("my_number",))
    clock.advance(hours=3, minutes=5, seconds=30)  # the hold may land a second after the clock
    await login(client, "ops@city.example")  # a CISO hold: not in a section head's list
    page = (await client.get("/held")).text
    assert "マイナンバー 3件" in page
    assert "被保険者番号 7,203件" in page
    assert "統括情報セキュリティ責任者" in page
    assert "3時間5分" in page
    assert "staff@city.example" in page and "center@care.example" in page
    assert (await client.get("/held?status=bogus")).status_code == 400
    assert "該当するメールはありません" in (await client.get("/held?status=released")).text


async def test_xss_subject_escaped(client, gateway):
    held = hold(gateway, subject="<script>alert(1)</script>")
    await login(client, "head@city.example")
    for path in ("/held", f"/held/{held.id}"):
        page = (await client.get(path)).text
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_detail_never_shows_full_my_number(client, gateway):
    subject = f"個人番号 {MY_NUMBER} の件"
    held = hold(gateway, subject=subject, raw=mail(subject))
    await login(client, "head@city.example")
    page = (await client.get(f"/held/{held.id}")).text
    digits_only = re.sub(r"[^0-9]", "", page)
    assert MY_NUMBER not in digits_only.replace(held.sha256, "")
    assert MY_NUMBER[:8] not in page
    assert f"{MY_NUMBER[:4]}-{MY_NUMBER[4:8]}" not in page
    assert "9018" in page  # last four digits are fine
    assert "名簿.xlsx!Sheet1!A2" in page and "****5678" in page
    assert "お世話になります" in page  # the masked body excerpt
    listing = (await client.get("/held")).text
    assert MY_NUMBER not in listing


async def test_get_never_changes_state(client, gateway):
    held = hold(gateway)
    await login(client, "ciso@city.example")
    r = await client.get(f"/held/{held.id}/release")
    assert r.status_code == 405 and "受け付けません" in r.text
    assert gateway.held.get(held.id).status == "held"


async def test_unknown_id_404_japanese(client):
    await login(client, "ciso@city.example")
    r = await client.get("/held/does-not-exist")
    assert r.status_code == 404 and "見つかりません" in r.text


# -- actions ----------------------------------------------------------------------------


async def test_csrf_missing_or_wrong_refused(client, gateway):
    held = hold(gateway)
    await login(client, "ciso@city.example")
    r = await client.post(f"/held/{held.id}/release", data={"mode": "as_is"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "as_is", "csrf_token": "forged"})
    assert r.status_code == 403
    r = await client.post(f"/held/{held.id}/reject", data={"comment": "x"})
    assert r.status_code == 403
    r = await client.post("/logout", data={})
    assert r.status_code == 403
    assert gateway.held.get(held.id).status == "held"


async def test_self_approval_refused(client, gateway):
    held = hold(gateway, sender="staff@city.example")
    await login(client, "staff@city.example")
    page = (await client.get(f"/held/{held.id}")).text
    assert "自分が送信したメール" in page and 'id="release"' not in page
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "as_is", "csrf_token": await csrf(client)})
    assert r.status_code == 403 and "自分が送信" in r.text
    assert gateway.held.get(held.id).status == "held"


async def test_addressed_to_self_refused(client, gateway):
    held = hold(gateway, recipients=("head@city.example",))
    await login(client, "head@city.example")
    r = await client.post(f"/held/{held.id}/reject",
                          data={"comment": "no", "csrf_token": await csrf(client)})
    assert r.status_code == 403 and "自分宛て" in r.text


async def test_wrong_role_refused(client, gateway, app):
    held = hold(gateway, role="ciso", rules=("my_number",))
    await login(client, "head@city.example")
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "as_is", "csrf_token": await csrf(client)})
    assert r.status_code == 403 and "統括情報セキュリティ責任者" in r.text
    async with new_client(app) as ops:
        await login(ops, "ops@city.example")
        r = await ops.post(f"/held/{held.id}/release",
                           data={"mode": "as_is", "csrf_token": await csrf(ops)})
        assert r.status_code == 403 and "運用担当者" in r.text
    assert gateway.held.get(held.id).status == "held"


async def test_release_as_is_enqueues_original(client, gateway):
    held = hold(gateway, role="ciso", rules=("my_number",))
    original = gateway.held.raw(held.id)
    await login(client, "ciso@city.example")
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "as_is", "comment": "確認済み", "confirm": "yes",
                                "csrf_token": await csrf(client)})
    assert r.status_code == 303 and r.headers["location"].endswith("done=released")
    assert gateway.held.get(held.id).status == "released"
    releases = [i for i in gateway.queue.items() if i.kind == "release"]
    assert len(releases) == 1 and releases[0].rcpts == ["center@care.example"]
    sent = gateway.queue.load(releases[0])
    assert sent.endswith(original)  # headers prepended, the rest byte-for-byte
    assert events(gateway, held_id=held.id) == ["approve", "release"]
    page = (await client.get(r.headers["location"])).text
    assert "送信しました" in page and "ciso@city.example" in page
    assert "暗号化せずにそのまま送信" in page


async def test_release_encrypted_enqueues_aes_zip(client, gateway):
    held = hold(gateway, role="ciso", rules=("my_number",))
    await login(client, "ciso@city.example")
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "encrypted", "csrf_token": await csrf(client)})
    assert r.status_code == 303
    items = gateway.queue.items()
    release = next(i for i in items if i.kind == "release")
    msg = message_from_bytes(gateway.queue.load(release), policy=default_policy)
    names = [p.get_filename() for p in msg.iter_attachments()]
    assert names == ["名簿.xlsx.zip"]
    data = next(msg.iter_attachments()).get_content()
    with pyzipper.AESZipFile(io.BytesIO(data)) as zf:
        info = zf.infolist()[0]
        assert info.filename == "名簿.xlsx"
        assert info.wz_aes_strength == 3  # AES-256, not ZipCrypto
        with pytest.raises(RuntimeError):
            zf.read(info.filename)  # needs the password
    # the password goes to the sender only, never to a recipient
    for item in items:
        body = gateway.queue.load(item)
        if "center@care.example" in item.rcpts:
            assert "パスワード:".encode() not in body
    assert any(i.rcpts == ["staff@city.example"] for i in items if i.kind == "notice")


async def test_reject_requires_comment(client, gateway):
    held = hold(gateway)
    await login(client, "head@city.example")
    r = await client.post(f"/held/{held.id}/reject",
                          data={"comment": "   ", "csrf_token": await csrf(client)})
    assert r.status_code == 400 and "理由" in r.text
    assert gateway.held.get(held.id).status == "held"
    r = await client.post(f"/held/{held.id}/reject",
                          data={"comment": "宛先が誤っています", "csrf_token": await csrf(client)})
    assert r.status_code == 303
    rejected = gateway.held.get(held.id)
    assert rejected.status == "rejected" and rejected.comment == "宛先が誤っています"
    assert not [i for i in gateway.queue.items() if i.kind == "release"]
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "as_is", "csrf_token": await csrf(client)})
    assert r.status_code == 409


async def test_two_approver_rule(client, gateway, app):
    held = hold(gateway, rules=("two_person",))
    await login(client, "head@city.example")
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "as_is", "confirm": "yes", "comment": "確認済み",
                                "csrf_token": await csrf(client)})
    assert r.headers["location"].endswith("done=approved")
    assert gateway.held.get(held.id).status == "held"
    page = (await client.get(r.headers["location"])).text
    assert "さらに別の承認者" in page and "head@city.example" in page
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "as_is", "confirm": "yes", "comment": "確認済み",
                                "csrf_token": await csrf(client)})
    assert r.status_code == 409  # the same person twice does not count
    async with new_client(app) as second:
        await login(second, "head2@city.example")
        r = await second.post(f"/held/{held.id}/release",
                              data={"mode": "as_is", "confirm": "yes",
                                    "comment": "確認済み", "csrf_token": await csrf(second)})
        assert r.headers["location"].endswith("done=released")
    assert gateway.held.get(held.id).status == "released"
    assert len([i for i in gateway.queue.items() if i.kind == "release"]) == 1


async def test_tampered_spool_cannot_be_released(client, gateway):
    held = hold(gateway, role="ciso", rules=("my_number",))
    name = f"held/{held.id}"
    if gateway.db.shared:  # PostgreSQL: the bytes are a row
        with gateway.db.transaction() as conn:
            conn.execute("UPDATE spool_blobs SET data = ? WHERE name = ?",
                         (gateway.spool.read(name) + b"\n", name))
    else:
        path = gateway.spool.path(name)
        path.write_bytes(path.read_bytes() + b"\n")
    await login(client, "ciso@city.example")
    page = (await client.get(f"/held/{held.id}")).text
    assert "SHA-256 と一致しません" in page
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "as_is", "csrf_token": await csrf(client)})
    assert r.status_code == 409
    assert gateway.held.get(held.id).status == "held"


# -- audit page and CSV -----------------------------------------------------------------


async def test_audit_page_and_csv_with_bom(client, gateway):
    held = hold(gateway, role="ciso", rules=("my_number",))
    await login(client, "ciso@city.example")
    await client.post(f"/held/{held.id}/reject",
                      data={"comment": "不要", "csrf_token": await csrf(client)})
    page = (await client.get("/audit?event=reject")).text
    assert "不要" in page and "名簿の送付" in page
    assert "login" not in re.sub(r"<option.*?</option>", "", page, flags=re.S)
    r = await client.get("/audit.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    text = r.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("連番,日時,イベント")
    assert "却下,ciso@city.example" in text and "staff@city.example" in text
    filtered = (await client.get("/audit.csv?event=login")).content.decode("utf-8-sig")
    assert "reject" not in filtered and "login" in filtered


async def test_audit_tamper_detected_after_web_actions(client, gateway):
    await login(client, "head@city.example")
    await login(client, "head@city.example", "wrong-password")
    assert gateway.audit.verify() == []
    tamper = "UPDATE audit_log SET actor = 'nobody' WHERE event = 'login_failed'"
    if gateway.db.shared:
        import psycopg

        with psycopg.connect(gateway.config.database_url, autocommit=True) as conn:
            conn.execute(tamper)
    else:
        conn = sqlite3.connect(gateway.db.path)
        with conn:
            conn.execute(tamper)
        conn.close()
    assert gateway.audit.verify()


async def test_expired_message_shown_and_not_actionable(client, gateway):
    held = hold(gateway)
    run_expiry(gateway, dt.datetime.now(dt.UTC) + dt.timedelta(hours=100))
    await login(client, "head@city.example")
    page = (await client.get("/held?status=expired")).text
    assert "名簿の送付" in page
    r = await client.post(f"/held/{held.id}/release",
                          data={"mode": "as_is", "csrf_token": await csrf(client)})
    assert r.status_code == 409 and "処理済み" in r.text


async def test_cookie_secure_under_tls(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://admin.test") as c:
        r = await login(c, "head@city.example")
        cookie = next(v for k, v in r.headers.multi_items()
                      if k == "set-cookie" and v.startswith("dlp_session="))
        assert "Secure" in cookie and "HttpOnly" in cookie
