"""Issue 10: held ids never look like a command-line option."""

from __future__ import annotations

import re

from dlp_gateway import cli
from dlp_gateway.gateway import Gateway
from dlp_gateway.store.held import new_held_id
from tests.conftest import make_config, roster_mail


def test_ids_start_with_a_letter_and_use_letters_and_digits_only():
    ids = {new_held_id() for _ in range(20_000)}
    assert len(ids) == 20_000
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9]{11}", i) for i in ids)


def test_held_show_accepts_every_stored_id(tmp_path, capsys):
    config = make_config(tmp_path, None)
    gw = Gateway(config)
    try:
        ids = [gw.held.add(roster_mail(2), sender="a@city.example.lg.jp",
                           recipients=["b@care.example.com"], subject="s", reasons=["r"],
                           rules=["x"], approver_role="section_head").id for _ in range(20)]
    finally:
        gw.close()
    for held_id in ids:
        assert cli.main(["held", "show", held_id, "--data-dir", str(config.data_dir)]) == 0
    capsys.readouterr()


def test_accounts_need_one_plain_mailbox(tmp_path):
    import pytest

    from dlp_gateway.store.users import UserError

    gw = Gateway(make_config(tmp_path, None))
    try:
        for bad in ('"a@evil.example,"@city.example.lg.jp', "a@b.example, c@d.example",
                    "x <a@city.example.lg.jp>"):
            with pytest.raises(UserError):
                gw.users.add(bad, "section_head", "password-123")
        gw.users.add("kacho@city.example.lg.jp", "section_head", "password-123")
    finally:
        gw.close()
