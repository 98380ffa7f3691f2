"""STARTTLS + SMTP AUTH against the user store, and the connection limit."""

from __future__ import annotations

import shutil
import smtplib
import ssl
import subprocess
import time

import pytest

from tests.conftest import RECIPIENT, SENDER, clean_mail


@pytest.fixture
def cert(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI needed to make a test certificate")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True,
    )
    return crt, key


def test_auth_only_after_starttls_and_then_relays(gateway_factory, upstream_sink, cert):
    crt, key = cert
    gw = gateway_factory(tls_cert=crt, tls_key=key, require_auth=True,
                         allowed_networks=["10.0.0.0/8"])
    gw.gateway.users.add(SENDER, "operator", "correct-horse-battery")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", "PLAIN AGF4AHk=")
        assert code in (530, 538)  # STARTTLS required first
        assert smtp.mail(SENDER)[0] == 530
        smtp.starttls(context=context)
        smtp.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(SENDER, "wrong-password")
        smtp.login(SENDER, "correct-horse-battery")
        smtp.sendmail(SENDER, [RECIPIENT], clean_mail(2))
    [got] = upstream_sink.wait_for(1)
    assert got.rcpts == [RECIPIENT]


def test_connection_limit(gateway_factory):
    gw = gateway_factory(max_connections=1, web=False)
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10) as first:
        assert first.noop()[0] == 250
        # issue 10: an idle connection would now be closed to make room; one in a
        # transaction keeps its place
        assert first.ehlo()[0] == 250 and first.mail("staff@city.example.lg.jp")[0] == 250
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10)
        assert refused.value.smtp_code == 421
    time.sleep(0.2)
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10) as again:
        assert again.noop()[0] == 250
