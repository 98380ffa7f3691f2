"""End to end in a real headless Chromium (Debian's package, driven by Playwright):
a roster mailed over SMTP is held; an approver logs in, opens it, releases it
encrypted; the upstream sink receives the AES zip, which opens with the password
sent to the sender only. (The README screenshots come from test_browser_departments.)"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
import pyzipper

from dlp_gateway.store.staff import StaffStore
from tests.conftest import APPROVER, RECIPIENT, SENDER, roster_mail, send

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
APPROVER_PASSWORD = "kacho-password-1"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} missing: run `make browser` (apt-get install chromium)"),
]


def _password_from_notice(sink) -> str:
    for delivered in sink.to(SENDER):
        body = delivered.message.get_body(preferencelist=("plain",)).get_content()
        found = re.search(r"パスワード: (\S+)", body)
        if found:
            return found.group(1)
    raise AssertionError("no password notice reached the sender")


def test_approver_releases_roster_encrypted_in_chromium(gateway_factory, upstream_sink):
    sync_api = pytest.importorskip("playwright.sync_api")
    gw = gateway_factory()
    gw.gateway.users.add(APPROVER, "section_head", APPROVER_PASSWORD, "介護保険課")
    StaffStore(gw.gateway.db).add(SENDER, "介護 花子", "介護保険課")

    code, text = send(gw.smtp_port, roster_mail(25, subject="要介護認定者名簿の送付"))
    assert code == 250 and "held for approval" in text, text
    held_id = text.rsplit(" ", 1)[-1].strip("<>")
    assert gw.gateway.held.get(held_id).status == "held"

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="ja-JP", viewport={"width": 1280, "height": 900})
            page.goto(f"{gw.admin_url}/held")
            assert "/login" in page.url  # every page needs a session
            page.fill("input[name=email]", APPROVER)
            page.fill("input[name=password]", APPROVER_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"/held$"))
            assert page.locator("text=要介護認定者名簿の送付").count() == 1

            page.click("text=要介護認定者名簿の送付")
            page.wait_for_url(re.compile(rf"/held/{re.escape(held_id)}$"))
            assert page.locator("text=介護名簿.xlsx").count() >= 1

            page.check("input[name=mode][value=encrypted]")
            page.fill("form.release textarea[name=comment]", "委託先への送付を確認しました")
            page.click("#release")
            page.wait_for_selector("text=送信しました")
        finally:
            browser.close()

    assert gw.gateway.held.get(held_id).status == "released"
    to_recipient = _wait_for_release(upstream_sink)
    attachments = list(to_recipient.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["介護名簿.xlsx.zip"]

    password = _password_from_notice(upstream_sink)
    for delivered in upstream_sink.to(RECIPIENT):
        assert password.encode() not in delivered.data  # never to a recipient
    with pyzipper.AESZipFile(io.BytesIO(attachments[0].get_content())) as zf:
        info = zf.getinfo("介護名簿.xlsx")
        assert info.wz_aes_strength == 3  # AES-256 (WinZip AE-x), not ZipCrypto
        with pytest.raises(RuntimeError):
            zf.read("介護名簿.xlsx")
        zf.setpassword(password.encode())
        assert zf.read("介護名簿.xlsx").startswith(b"PK")


def _wait_for_release(sink, timeout: float = 15.0):
    """The released roster at the recipient, once the sender's password notice is there too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        released = [m for m in sink.to(RECIPIENT) if m.message["X-DLP-Verdict"]]
        notices = [m for m in sink.to(SENDER) if b"X-DLP-Notice" in m.data]
        if released and len(notices) >= 2:  # hold notice, then password / release notices
            try:
                _password_from_notice(sink)
                return released[0].message
            except AssertionError:
                pass
        time.sleep(0.05)
    raise AssertionError("the released roster or the password notice never arrived upstream")
