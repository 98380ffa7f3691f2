"""Issue 9 end to end in real headless Chromium, at 1280 px and at 390 px (a phone).

Two departments (介護保険課, 税務課), each with a section head; a 介護保険課 clerk sends,
over real SMTP, a 30-person roster, a body-only mail with two people in the body, and a
second roster. Then:

- the 税務課 head sees none of them and is refused on the detail page and on release;
- the 介護保険課 head tries an as-is release without confirmation: refused, nothing sent;
  then releases the roster encrypted (the default) and the body-only mail as is (with
  confirmation and a reason);
- the sender opens the status link from the hold notice and withdraws the second roster;
- the real upstream sink receives exactly the two released mails, never the withdrawn one.

At 390 px the list and detail pages must not scroll sideways and the decision buttons
are stacked. Screenshots for the README go to docs/.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from dlp_gateway.store.staff import StaffStore
from tests.conftest import RECIPIENT, roster_mail, send

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Screenshots refresh docs/ only when asked (DLP_SCREENSHOTS=1, `make screenshots`), so a
# test run leaves the checkout clean; otherwise they go to a temporary directory.
DOCS = (Path(__file__).resolve().parents[2] / "docs" if os.environ.get("DLP_SCREENSHOTS")
        else Path(tempfile.mkdtemp(prefix="dlp-shots-")))
CLERK = "kaigo-tanto@city.example.lg.jp"
KAIGO_HEAD = "kaigo-kacho@city.example.lg.jp"
ZEIMU_HEAD = "zeimu-kacho@city.example.lg.jp"
PASSWORD = {KAIGO_HEAD: "kaigo-kacho-pass", ZEIMU_HEAD: "zeimu-kacho-pass"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} missing: run `make browser` (apt-get install chromium)"),
]


def body_only_mail() -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = CLERK, RECIPIENT, "認定調査の依頼"
    msg.set_content(
        "お世話になっております。介護保険課です。\n下記の方の認定調査をお願いします。\n\n"
        "被保険者番号 1000000018 氏名 佐藤 花子 生年月日 昭和20年1月2日\n"
        "被保険者番号 1000007937 氏名 鈴木 太郎 生年月日 昭和21年2月3日\n\nよろしくお願いします。\n"
    )
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def held_id_of(reply: str) -> str:
    return reply.rsplit(" ", 1)[-1].strip("<>")


def notice_text(delivered) -> str:
    return delivered.message.get_body(preferencelist=("plain",)).get_content()


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def login(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD[email])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/held$"))


def logout(page) -> None:
    page.click("header button.link")
    page.wait_for_url(re.compile(r"/login$"))


def assert_no_sideways_scroll(page, what: str) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[1], f"{what}: page is {widths[0]} px wide in {widths[1]} px"


@pytest.mark.parametrize("width", [1280, 390])
def test_two_departments_end_to_end(gateway_factory, upstream_sink, width):
    sync_api = pytest.importorskip("playwright.sync_api")
    gw = gateway_factory()
    users = gw.gateway.users
    users.add(KAIGO_HEAD, "section_head", PASSWORD[KAIGO_HEAD], "介護保険課")
    users.add(ZEIMU_HEAD, "section_head", PASSWORD[ZEIMU_HEAD], "税務課")
    users.add("ciso@city.example.lg.jp", "ciso", "ciso-password-1")
    StaffStore(gw.gateway.db).add(CLERK, "介護 花子", "介護保険課")

    ids = {}
    for key, raw in (("roster", roster_mail(30, subject="要介護認定者名簿の送付", sender=CLERK)),
                     ("body", body_only_mail()),
                     ("second", roster_mail(12, subject="追加の名簿", sender=CLERK,
                                            filename="追加名簿.xlsx"))):
        code, reply = send(gw.smtp_port, raw, mail_from=CLERK)
        assert code == 250 and "held for approval" in reply, reply
        ids[key] = held_id_of(reply)
    # the 介護保険課 head is told of all three; the 税務課 head of none
    wait_until(lambda: len(upstream_sink.to(KAIGO_HEAD)) >= 3, what="approver notices")
    assert upstream_sink.to(ZEIMU_HEAD) == []
    hold_notices = wait_until(lambda: len(upstream_sink.to(CLERK)) >= 3 and upstream_sink.to(CLERK),
                              what="sender notices")
    second_notice = next(notice_text(m) for m in hold_notices if "追加の名簿" in notice_text(m))
    assert "介護保険課の所属長" in second_notice and re.search(r"\d{4}年\d+月\d+日 \d\d:\d\d",
                                                          second_notice)
    status_link = re.search(r"http://\S+/s/\S+", second_notice).group(0)

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="ja-JP", viewport={"width": width, "height": 900})
            base = gw.admin_url
            suffix = "" if width == 1280 else "-390"

            # -- the other department's head: sees nothing, may not release -----------------
            login(page, base, ZEIMU_HEAD)
            assert page.locator(".held-item").count() == 0
            response = page.goto(f"{base}/held/{ids['roster']}")
            assert response.status == 403 and page.locator(".held-item").count() == 0
            assert page.locator("form.release").count() == 0
            token = page.locator("input[name=csrf_token]").first.input_value()
            refused = page.request.post(
                f"{base}/held/{ids['roster']}/release",
                form={"csrf_token": token, "mode": "encrypted", "comment": "x"},
            )
            assert refused.status == 403
            logout(page)

            # -- the own head: all three listed -------------------------------------------
            login(page, base, KAIGO_HEAD)
            assert page.locator(".held-item").count() == 3
            assert page.locator("text=介護 花子").count() >= 1
            assert_no_sideways_scroll(page, "held list")
            DOCS.mkdir(exist_ok=True)
            page.screenshot(path=str(DOCS / f"held-list{suffix}.png"), full_page=True)

            page.click("text=要介護認定者名簿の送付")
            page.wait_for_url(re.compile(rf"/held/{re.escape(ids['roster'])}$"))
            assert page.locator("text=30人: 被保険者番号・氏名・生年月日").count() == 1
            assert page.locator("table.sheet tbody tr").count() == 5
            assert page.is_checked("input[name=mode][value=encrypted]")  # the default
            assert_no_sideways_scroll(page, "held detail")
            release = page.locator("#release").bounding_box()
            reject = page.locator("#reject").bounding_box()
            if width == 390:  # stacked, full width
                assert reject["y"] >= release["y"] + release["height"]
                assert release["width"] > 300
            page.screenshot(path=str(DOCS / f"held-detail{suffix}.png"), full_page=True)

            # as is without the confirmation box: refused, nothing delivered
            page.check("input[name=mode][value=as_is]")
            page.fill("form.release textarea[name=comment]", "先方が ZIP を開けないため")
            page.click("#release")
            page.wait_for_selector("text=送信していません")
            assert gw.gateway.held.get(ids["roster"]).status == "held"

            # the default (encrypted) release
            page.goto(f"{base}/held/{ids['roster']}")
            page.fill("form.release textarea[name=comment]", "委託先への送付を確認しました")
            page.click("#release")
            outcome = page.wait_for_selector("#outcome").inner_text()
            assert "添付ファイルを暗号化して送信" in outcome and KAIGO_HEAD in outcome

            # the body-only hold: as is by default, with confirmation and a reason
            page.goto(f"{base}/held/{ids['body']}")
            assert page.locator("input[name=mode][value=encrypted]").count() == 0
            assert page.is_checked("input[name=mode][value=as_is]")
            excerpt = page.locator("pre.body").inner_text()
            assert "花子" not in excerpt and "昭和20" not in excerpt and "1000000018" not in excerpt
            page.check("input[name=confirm]")
            page.fill("form.release textarea[name=comment]", "調査依頼のため本文で送付")
            page.click("#release")
            outcome = page.wait_for_selector("#outcome").inner_text()
            assert "暗号化せずにそのまま送信" in outcome

            # -- the sender withdraws the second roster through the link (no login) --------
            sender_page = browser.new_page(locale="ja-JP",
                                           viewport={"width": width, "height": 900})
            # tests listen on port 0, so the link's host part is the configured 127.0.0.1:0
            sender_page.goto(f"{base}/s/{status_link.split('/s/', 1)[1]}")
            assert sender_page.locator("#status").inner_text().startswith("保留中")
            assert_no_sideways_scroll(sender_page, "status page")
            sender_page.screenshot(path=str(DOCS / f"status-page{suffix}.png"), full_page=True)
            sender_page.click("#withdraw")
            sender_page.wait_for_selector("text=送信を取り消しました")

            page.goto(f"{base}/held")
            assert page.locator(".held-item").count() == 0
            page.goto(f"{base}/audit")
            assert page.locator("text=差出人による取り消し").count() >= 1
            assert_no_sideways_scroll(page, "audit page")
            page.screenshot(path=str(DOCS / f"audit{suffix}.png"), full_page=False)
        finally:
            browser.close()

    assert gw.gateway.held.get(ids["second"]).status == "withdrawn"
    released = wait_until(
        lambda: len([m for m in upstream_sink.to(RECIPIENT) if m.message["X-DLP-Verdict"]]) >= 2
        and [m for m in upstream_sink.to(RECIPIENT) if m.message["X-DLP-Verdict"]],
        what="two released mails upstream",
    )
    time.sleep(0.5)  # anything else queued would arrive by now
    to_recipient = upstream_sink.to(RECIPIENT)
    assert len(to_recipient) == 2
    verdicts = sorted(m.message["X-DLP-Verdict"] for m in released)
    assert verdicts == ["released-as-is", "released-encrypted"]
    subjects = {str(m.message["Subject"]) for m in to_recipient}
    assert "追加の名簿" not in subjects
    encrypted = next(m for m in released if m.message["X-DLP-Verdict"] == "released-encrypted")
    assert [a.get_filename() for a in encrypted.message.iter_attachments()] == [
        "介護名簿.xlsx.zip"]
