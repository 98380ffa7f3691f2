"""Issue 9 over HTTP: department scoping, safe release, the sender's status page and
withdrawal, notices with deadline and link, list search/filters/paging, the audit
page in Japanese, one time zone. A real Gateway (SQLite + spool) behind the app."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import httpx
import pytest

from dlp_gateway import cli
from dlp_gateway.config import load_config
from dlp_gateway.gateway import Gateway
from dlp_gateway.store.staff import StaffStore
from dlp_gateway.web.app import create_app
from tests.webkit import Clock, cheap_argon2, client_for, csrf_of  # noqa: F401

KAIGO, ZEIMU = "介護保険課", "税務課"
ACCOUNTS = {
    "kaigo-kacho@city.example": ("section_head", KAIGO, False),
    "kaigo-dairi@city.example": ("section_head", KAIGO, True),
    "zeimu-kacho@city.example": ("section_head", ZEIMU, False),
    "ciso@city.example": ("ciso", None, False),
    "ops@city.example": ("operator", None, False),
}
SENDER = "kaigo@city.example"
RECIPIENT = "center@care.example"


def _gateway(tmp_path, **overrides) -> Gateway:
    gw = Gateway(load_config(data_dir=tmp_path / "data", **overrides))
    for email, (role, dept, deputy) in ACCOUNTS.items():
        gw.users.add(email, role, f"pw-{email}", dept, deputy=deputy)
    staff = StaffStore(gw.db)
    staff.add(SENDER, "介護 花子", KAIGO)
    staff.add("zeimu@city.example", "税務 次郎", ZEIMU)
    return gw


@pytest.fixture
def gateway(tmp_path):
    gw = _gateway(tmp_path)
    yield gw
    gw.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(gateway, clock):
    return create_app(gateway, clock=clock)


@contextlib.asynccontextmanager
async def login(app, email) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        token = _csrf((await client.get("/login")).text)
        r = await client.post("/login", data={"email": email, "password": f"pw-{email}",
                                              "csrf_token": token})
        assert r.status_code == 303, r.text
        yield client


_csrf = csrf_of


def mail(sender=SENDER, subject="名簿の送付", attachment=True) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, RECIPIENT, subject
    msg.set_content("お世話になります。\n山田 太郎 様 昭和45年3月2日生\n")
    if attachment:
        msg.add_attachment("被保険者番号,氏名\n1234567890,山田太郎\n".encode(),
                           maintype="text", subtype="csv", filename="名簿.csv")
    return msg.as_bytes()


def hold(gw: Gateway, sender=SENDER, subject="名簿の送付", attachment=True, role="section_head",
         rules=("many_records",)):
    held = gw.held.add(
        mail(sender, subject, attachment), sender=sender, recipients=[RECIPIENT],
        subject=subject, reasons=["個人情報 12人分（10人分以上）"], rules=list(rules),
        approver_role=role, counts={"insured_number": 12, "name": 12, "records": 12},
        findings=[{"type": "insured_number", "part": "名簿.csv" if attachment else "body",
                   "location": ("名簿.csv!A2" if attachment else "body!L2"),
                   "masked": "******7890", "confidence": 0.9, "in_body": not attachment}]
        + ([] if attachment else [
            {"type": "name", "part": "body", "location": "body!L2", "masked": "山＊＊＊＊",
             "confidence": 0.8, "in_body": True},
            {"type": "birth_date", "part": "body", "location": "body!L2", "masked": "＊",
             "confidence": 0.9, "in_body": True}]),
    )
    gw.notify_hold(held)
    return held


async def post(client, path, data):
    page = await client.get("/held")
    return await client.post(path, data={**data, "csrf_token": _csrf(page.text)})


def releases(gw):
    return [i for i in gw.queue.items() if i.kind == "release"]


def notices_to(gw, rcpt) -> list[str]:
    out = []
    for item in gw.queue.items():
        if item.kind == "notice" and rcpt in item.rcpts:
            msg = message_from_bytes(gw.queue.load(item), policy=default_policy)
            out.append(msg.get_body(preferencelist=("plain",)).get_content())
    return out


# -- department scoping -------------------------------------------------------------------


async def test_other_department_head_can_neither_see_nor_release(app, gateway):
    held = hold(gateway)
    async with login(app, "zeimu-kacho@city.example") as zeimu:
        assert "名簿の送付" not in (await zeimu.get("/held")).text
        detail = await zeimu.get(f"/held/{held.id}")
        assert detail.status_code == 403 and "名簿" not in detail.text.split("</header>")[1]
        r = await post(zeimu, f"/held/{held.id}/release",
                       {"mode": "encrypted", "comment": "x", "confirm": "yes"})
        assert r.status_code == 403
        r = await post(zeimu, f"/held/{held.id}/reject", {"comment": "だめ"})
        assert r.status_code == 403
    assert releases(gateway) == [] and gateway.held.get(held.id).status == "held"
    async with login(app, "kaigo-dairi@city.example") as dairi:
        listing = (await dairi.get("/held")).text
        assert "名簿の送付" in listing and "要判断" in listing and "介護 花子" in listing
        r = await post(dairi, f"/held/{held.id}/release", {"mode": "encrypted"})
        assert r.status_code == 303
    assert len(releases(gateway)) == 1


async def test_as_is_needs_confirmation_and_reason(app, gateway):
    held = hold(gateway)
    async with login(app, "kaigo-kacho@city.example") as head:
        page = (await head.get(f"/held/{held.id}")).text
        assert 'value="encrypted" checked' in page  # attachments: encrypted by default
        assert "12人分" in page and RECIPIENT in page  # what an as-is release would expose
        for data in ({"mode": "as_is"}, {"mode": "as_is", "comment": "急ぎ"},
                     {"mode": "as_is", "confirm": "yes"},
                     {"mode": "as_is", "confirm": "yes", "comment": "   "},
                     {"mode": "as_is", "confirm": "on", "comment": "急ぎ"}):
            r = await post(head, f"/held/{held.id}/release", data)
            assert 400 <= r.status_code < 500, data
            assert "送信していません" in r.text
        assert releases(gateway) == [] and gateway.held.get(held.id).status == "held"
        assert gateway.audit.entries(event="approve") == []
        r = await post(head, f"/held/{held.id}/release",
                       {"mode": "as_is", "confirm": "yes", "comment": "先方が ZIP を開けないため"})
        assert r.status_code == 303
        page = (await head.get(r.headers["location"])).text
        assert "暗号化せずにそのまま送信" in page and "kaigo-kacho@city.example" in page
    [entry] = gateway.audit.entries(event="release")
    assert entry.details["mode"] == "as_is" and entry.actor == "kaigo-kacho@city.example"
    [notice] = [t for t in notices_to(gateway, SENDER) if "メールが承認され" in t]
    assert "暗号化せずにそのまま送信" in notice and "kaigo-kacho@city.example" in notice
    assert re.search(r"承認日時: \d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", notice)


async def test_body_only_hold_defaults_to_as_is_and_is_releasable(app, gateway):
    held = hold(gateway, attachment=False, rules=("records_in_body",))
    async with login(app, "kaigo-kacho@city.example") as head:
        page = (await head.get(f"/held/{held.id}")).text
        assert 'value="encrypted"' not in page and 'value="as_is" checked' in page
        assert "山田" not in page and "太郎" not in page and "45年" not in page
        r = await post(head, f"/held/{held.id}/release", {"mode": "encrypted"})
        assert r.status_code == 400 and releases(gateway) == []
        r = await post(head, f"/held/{held.id}/release",
                       {"confirm": "yes", "comment": "本人宛の連絡のため"})  # default mode
        assert r.status_code == 303
    [item] = releases(gateway)
    assert gateway.queue.load(item).startswith(b"X-DLP-Verdict: released-as-is")
    assert gateway.held.get(held.id).release_mode == "as_is"


# -- the sender's side ------------------------------------------------------------------


def _status_link(gateway) -> str:
    [text] = [t for t in notices_to(gateway, SENDER) if "[送信保留]" in t or "保留しました" in t]
    return re.search(r"http://\S+/s/(\S+)", text).group(0)


async def test_hold_notice_has_counts_approver_deadline_and_link(gateway):
    held = hold(gateway)
    [text] = notices_to(gateway, SENDER)
    assert "被保険者番号 12件" in text and "12人分" in text
    assert "介護保険課の所属長" in text
    due = dt.datetime.fromisoformat(held.received) + dt.timedelta(hours=72)
    local = due.astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}" in text
    assert "/s/" in text and "取り消し" in text
    assert "UTC" not in text and held.received not in text


async def test_sender_withdraws_through_the_link(app, gateway, tmp_path, capsys):
    held = hold(gateway)
    link = _status_link(gateway)
    path = link.split("://", 1)[1].split("/", 1)[1]
    async with client_for(app) as anonymous:  # no login
        page = await anonymous.get("/" + path)
        assert page.status_code == 200 and "保留中" in page.text
        assert "介護保険課の所属長" in page.text
        r = await anonymous.get("/" + path[:-3] + "abc")
        assert r.status_code == 404
        r = await anonymous.post("/" + path + "/withdraw",
                                 headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 403 and gateway.held.get(held.id).status == "held"
        r = await anonymous.post("/" + path + "/withdraw")
        assert r.status_code == 303
        page = await anonymous.get(r.headers["location"])
        assert "取り消しました" in page.text and "取り消し（差出人）" in page.text
        again = await anonymous.post("/" + path + "/withdraw")
        assert again.status_code == 409
    assert gateway.held.get(held.id).status == "withdrawn"
    assert [e.event for e in gateway.audit.entries(held_id=held.id)] == ["withdraw"]
    told = [t for t in notices_to(gateway, "kaigo-kacho@city.example") if "取り消しました" in t]
    assert len(told) == 1 and "判断は不要" in told[0]
    assert not [t for t in notices_to(gateway, "zeimu-kacho@city.example")]
    async with login(app, "kaigo-kacho@city.example") as head:
        assert "名簿の送付" not in (await head.get("/held")).text
        r = await post(head, f"/held/{held.id}/release", {"mode": "encrypted"})
        assert r.status_code == 409
    assert releases(gateway) == []
    assert cli.main(["held", "list", "--status", "withdrawn", "--format", "json",
                     "--data-dir", str(tmp_path / "data")]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["status"] == "withdrawn" and json.loads(line)["id"] == held.id


async def test_status_link_expires_with_the_hold(app, gateway, clock):
    hold(gateway)
    path = "/" + _status_link(gateway).split("://", 1)[1].split("/", 1)[1]
    async with client_for(app) as anonymous:
        assert (await anonymous.get(path)).status_code == 200
        clock.now += dt.timedelta(hours=73)
        r = await anonymous.get(path)
        assert r.status_code == 404 and "有効期限" in r.text
        assert (await anonymous.post(path + "/withdraw")).status_code == 404


# -- list, audit, time zone -------------------------------------------------------------


async def test_list_search_filters_and_paging(app, gateway):
    for i in range(25):
        hold(gateway, subject=f"名簿 {i:02d}")
    hold(gateway, sender="zeimu@city.example", subject="税務の名簿")
    async with login(app, "ops@city.example") as ops:
        first = (await ops.get("/held")).text
        assert "26件" in first and "1 / 2 ページ" in first
        assert re.search(r"残り (2日23時間|3日0時間)", first)  # 72 h deadline
        second = (await ops.get("/held?page=2")).text
        assert "2 / 2 ページ" in second
        assert (await ops.get("/held?department=税務課")).text.count('class="held-item') == 1
        assert (await ops.get("/held?q=名簿 07")).text.count('class="held-item') == 1
        assert (await ops.get("/held?sender=税務 次郎")).text.count('class="held-item') == 1
        r = (await ops.get("/held?recipient=nobody@x")).text
        assert "該当するメールはありません" in r
        assert "26件" in (await ops.get("/held?rule=many_records")).text
        assert "該当する" in (await ops.get("/held?rule=my_number")).text
    async with login(app, "zeimu-kacho@city.example") as zeimu:
        page = (await zeimu.get("/held")).text
        assert page.count('class="held-item') == 1 and "税務の名簿" in page


async def test_audit_page_japanese_and_readable(app, gateway):
    held = hold(gateway)
    async with login(app, "kaigo-kacho@city.example") as head:
        await post(head, f"/held/{held.id}/release", {"mode": "encrypted"})
        page = (await head.get("/audit")).text
    body = re.sub(r"<select.*?</select>", "", page, flags=re.S)
    assert "送信（承認済み）" in body and "送信方法" in body
    assert "添付ファイルを暗号化して送信" in body
    for code in (">release<", ">login<", "{'", "['", "encrypted_files"):
        assert code not in body, code
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", body)


async def test_one_time_zone_from_config(tmp_path, clock):
    gw = _gateway(tmp_path, timezone="UTC")
    try:
        held = hold(gw)
        received = dt.datetime.fromisoformat(held.received)
        stamp = f"{received.year}年{received.month}月{received.day}日 {received:%H:%M}"
        app = create_app(gw, clock=clock)
        async with login(app, "kaigo-kacho@city.example") as head:
            assert stamp in (await head.get(f"/held/{held.id}")).text
        [text] = notices_to(gw, SENDER)
        assert stamp in text
    finally:
        gw.close()
    with pytest.raises(ValueError):
        load_config(data_dir=tmp_path / "x", timezone="Mars/Olympus")
