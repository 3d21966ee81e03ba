"""The token API against a real uvicorn on loopback: what a distributor's ERP sees."""

from __future__ import annotations

import io
import threading

import requests
from sqlalchemy import func, select

from shortage_watch.services.accounts import disable_account
from shortage_watch.store.tables import AuditEvent, IdempotencyKey, RawReceipt, StoppageNotice, WebSubmission

from tests.web.conftest import add_distributor, notice, token_for


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_records_accepted_with_a_receipt_stating_the_deadline(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    answer = requests.post(f"{server.address}/api/v1/records", json=notice(), headers=_auth(token), timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["duplicates"], body["rejected"], body["errors"]) == (1, 0, 0, [])
    assert body["warnings"] == []
    [receipt] = body["receipts"]
    # Received Tuesday 8 October 2024; the 12th is a make-up Saturday: due Monday the 14th, end of day.
    assert receipt["obligation"].startswith("SW-O-")
    assert receipt["due_on"] == "2024-10-14"
    assert receipt["due_at"] == "2024-10-14T23:59:59+08:00"


def test_records_with_a_bad_row_keep_the_others(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    records = {"records": [notice("TZ-1"), notice("TZ-2", notified_on="2099-01-01"), notice("TZ-3")]}
    body = requests.post(f"{server.address}/api/v1/records", json=records, headers=_auth(token), timeout=10).json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    [error] = body["errors"]
    assert error["field"] == "notified_on" and "/" in error["reason"]
    assert [r["id"] for r in body["receipts"]] == ["TZ-1", "TZ-3"]


def test_another_distributors_record_is_a_row_error(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    records = [notice("TZ-1"), notice("TZ-2", distributor_code="D350902")]
    body = requests.post(f"{server.address}/api/v1/records", json=records, headers=_auth(token), timeout=10).json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["field"] == "distributor_code"
    with app.sessions() as session:
        assert session.scalars(select(StoppageNotice.distributor_code)).all() == ["D350901"]


def test_kind_from_the_query_for_records_without_record_kind(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    record = notice()
    del record["record_kind"]
    body = requests.post(f"{server.address}/api/v1/records?kind=stoppage_notice", json=record, headers=_auth(token),
                         timeout=10).json()
    assert body["accepted"] == 1


def test_idempotency_key_replays_the_first_answer_and_stores_once(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    headers = {**_auth(token), "Idempotency-Key": "erp-batch-17"}
    first = requests.post(f"{server.address}/api/v1/records", json=[notice()], headers=headers, timeout=10)
    again = requests.post(f"{server.address}/api/v1/records", json=[notice()], headers=headers, timeout=10)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = requests.post(f"{server.address}/api/v1/records", json=[notice("TZ-9")], headers=headers, timeout=10)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["error"]
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RawReceipt)) == 1


def test_idempotency_key_race_from_two_threads_stores_once(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    headers = {**_auth(token), "Idempotency-Key": "race-1"}
    records = [notice(f"TZ-{i}") for i in range(200)]  # big enough that the two requests overlap
    answers: list[requests.Response] = []
    gate = threading.Barrier(2)

    def send() -> None:
        gate.wait()
        answers.append(requests.post(f"{server.address}/api/v1/records", json=records, headers=headers, timeout=60))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RawReceipt)) == 1
        assert session.scalar(select(func.count()).select_from(StoppageNotice)) == 200
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1


def test_no_token_or_a_bad_one_is_401_with_www_authenticate(web):
    app, server = web
    add_distributor(app, "D350901")
    for headers in ({}, _auth("sw_not-a-token"), {"Authorization": "Basic abc"}):
        answer = requests.post(f"{server.address}/api/v1/records", json=notice(), headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "API" in answer.json()["error"]


def test_revoked_token_is_401_and_disabled_account_403(web):
    from shortage_watch.services.accounts import revoke_token

    app, server = web
    user = add_distributor(app, "D350901")
    revoked, kept = token_for(app, user), token_for(app, user)
    revoke_token(app.sessions, 1, now=app.clock.now(), actor="test")
    assert requests.get(f"{server.address}/api/v1/obligations", headers=_auth(revoked), timeout=10).status_code == 401
    disable_account(app.sessions, "D350901", app.clock.now())
    answer = requests.get(f"{server.address}/api/v1/obligations", headers=_auth(kept), timeout=10)
    assert answer.status_code == 403 and "停用" in answer.json()["error"]


def test_body_over_the_upload_limit_is_413(make_web):
    app, server = make_web(upload_max_bytes=100_000)
    token = token_for(app, add_distributor(app, "D350901"))
    big = [notice(f"TZ-{i}", reason="x" * 1000) for i in range(200)]  # ~250 kB
    answer = requests.post(f"{server.address}/api/v1/records", json=big, headers=_auth(token), timeout=10)
    assert answer.status_code == 413 and "100000" in answer.json()["error"]
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(RawReceipt)) == 0


def test_wrong_content_type_or_file_type_is_415(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    answer = requests.post(f"{server.address}/api/v1/records", data="notice_id,x", headers={
        **_auth(token), "Content-Type": "text/csv"}, timeout=10)
    assert answer.status_code == 415
    answer = requests.post(f"{server.address}/api/v1/files", files={"file": ("notes.pdf", b"%PDF-1.4")},
                           headers=_auth(token), timeout=10)
    assert answer.status_code == 415 and "notes.pdf" in answer.json()["error"]


def test_unreadable_json_is_422_with_a_reason_and_kept(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    answer = requests.post(f"{server.address}/api/v1/records", data=b'{"records": [', headers={
        **_auth(token), "Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 422
    assert " / " in answer.json()["error"]
    assert "Traceback" not in answer.text
    with app.sessions() as session:
        assert session.scalars(select(RawReceipt.status)).all() == ["rejected"]


def test_over_the_per_token_rate_is_429_with_retry_after(make_web):
    app, server = make_web(api_requests_per_minute=3)
    token = token_for(app, add_distributor(app, "D350901"))
    codes = [requests.get(f"{server.address}/api/v1/obligations", headers=_auth(token), timeout=10)
             for _ in range(4)]
    assert [a.status_code for a in codes] == [200, 200, 200, 429]
    assert 1 <= int(codes[-1].headers["Retry-After"]) <= 60


def test_obligations_are_paged_and_only_mine(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    other = token_for(app, add_distributor(app, "D350902"))
    requests.post(f"{server.address}/api/v1/records", json=[notice(f"TZ-{i}") for i in range(5)],
                  headers=_auth(token), timeout=10)
    requests.post(f"{server.address}/api/v1/records", json=[notice("THEIRS", distributor_code="D350902")],
                  headers=_auth(other), timeout=10)
    page = requests.get(f"{server.address}/api/v1/obligations?limit=2&offset=1&state=open", headers=_auth(token),
                        timeout=10).json()
    assert (page["total"], page["limit"], page["offset"], len(page["data"])) == (5, 2, 1, 2)
    assert {o["notice_id"] for o in page["data"]} <= {f"TZ-{i}" for i in range(5)}
    theirs = requests.get(f"{server.address}/api/v1/obligations", headers=_auth(other), timeout=10).json()["data"]
    [their_id] = [o["id"] for o in theirs]
    # One distributor cannot read another's obligation, by either form of its number.
    for number in (their_id, their_id.removeprefix("SW-O-").lstrip("0")):
        answer = requests.get(f"{server.address}/api/v1/obligations/{number}", headers=_auth(token), timeout=10)
        assert answer.status_code == 404
    mine = requests.get(f"{server.address}/api/v1/obligations/{their_id}", headers=_auth(other), timeout=10).json()
    assert mine["timeline"][0]["what"] == "opened"


def test_a_2mb_file_upload(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    header = "通知编号,生产企业,药品编码,药品名称,类型,配送企业编码,通知日期,原因\n"
    rows = [f"BIG-{i:05d},华北制药股份有限公司,XJ{i:08d},注射用头孢曲松钠,停产,D350901,2024-10-08,{'原料药供应不足' * 200}\n"
            for i in range(800)]
    content = (header + "".join(rows)).encode("gb18030")
    assert len(content) > 2_000_000
    answer = requests.post(f"{server.address}/api/v1/files", files={"file": ("停产通知.csv", io.BytesIO(content))},
                           headers=_auth(token), timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (800, 0)
    with app.sessions() as session:
        assert session.scalar(select(WebSubmission.channel)) == "api"


def test_token_use_and_submission_are_audited_with_the_account(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    requests.post(f"{server.address}/api/v1/records", json=notice(), headers=_auth(token), timeout=10)
    with app.sessions() as session:
        actions = set(session.execute(select(AuditEvent.actor, AuditEvent.action)).all())
    assert {("web:D350901", "used"), ("web:D350901", "submitted")} <= actions


def test_openapi_document_lists_the_api(web):
    _app, server = web
    paths = requests.get(f"{server.address}/openapi.json", timeout=10).json()["paths"]
    assert {"/api/v1/records", "/api/v1/files", "/api/v1/obligations", "/api/v1/obligations/{obligation_id}"} <= set(paths)


def test_a_distributors_timeline_holds_its_own_mail_and_no_bureau_address(web):
    app, server = web
    token = token_for(app, add_distributor(app, "D350901"))
    # Received 2024-09-20, entered 2024-10-08: overdue on arrival, mail to the distributor and up the ladder at once.
    requests.post(f"{server.address}/api/v1/records", json=[notice("N-LATE", notified_on="2024-09-20")], headers=_auth(token), timeout=10)
    answer = requests.get(f"{server.address}/api/v1/obligations/1", headers=_auth(token), timeout=10)
    assert answer.status_code == 200
    timeline = answer.json()["timeline"]
    mail = [e for e in timeline if e["what"].startswith("mail:")]
    assert [e["what"] for e in mail] == ["mail:written_reminder"] and {e["detail"]["to"] for e in mail} == {"distributor"}
    assert "@example.com" not in answer.text  # the bureaus' addresses (jc-ybj@…, nd-ybj@…) are theirs
