"""The distributor's obligation page tells what happened in words, Chinese first, English on the switch."""

from __future__ import annotations

import re

import requests

from tests.web.conftest import add_distributor, notice, token_for
from tests.web.test_portal_security import login

ROW = re.compile(r"<tr><td>[^<]*</td><td>([^<]*)</td></tr>")


def test_the_obligation_timeline_is_in_words_not_internal_codes(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    # Received 2024-09-20, entered 2024-10-08: overdue on arrival, the ladder's earlier steps skipped.
    requests.post(f"{server.address}/api/v1/records", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                  json=[notice("N-LATE", notified_on="2024-09-20")])
    browser = login(server, "D350901")
    chinese = ROW.findall(browser.get(f"{server.address}/obligations/1", timeout=10).text)
    assert chinese[0] == "义务生成" and "邮件：书面提醒" in chinese
    assert not [w for w in chinese if re.search(r"[a-z]{3}", w)], chinese  # no opened, level_skipped, mail:…
    browser.cookies.set("sw_lang", "en")
    english = ROW.findall(browser.get(f"{server.address}/obligations/1", timeout=10).text)
    assert len(english) == len(chinese) and "mail: formal written reminder" in english
    assert not [w for w in english if "_" in w], english
