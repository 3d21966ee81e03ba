"""Obligation and case states: stored values, the sets built from them, and pure transitions with their audit entries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shortage_watch.domain.labels import LABELS
from shortage_watch.domain.states import (
    CASE_ACTIVE,
    CASE_ON_LADDER,
    OBLIGATION_FINISHED,
    OBLIGATION_IN_FLIGHT,
    CaseState,
    ObligationState,
    case_escalated,
    case_regional,
    case_resolved,
    obligation_cancelled,
    obligation_due,
    obligation_fulfilled,
)

DUE = datetime(2024, 10, 11, 15, 59, 59, tzinfo=timezone.utc)


def test_stored_values_are_unchanged():
    assert [s.value for s in ObligationState] == ["open", "overdue", "fulfilled", "fulfilled_late", "cancelled"]
    assert [s.value for s in CaseState] == ["open", "regional", "escalated", "resolved"]


def test_every_obligation_state_is_in_flight_or_finished_never_both():
    assert set(OBLIGATION_IN_FLIGHT) | set(OBLIGATION_FINISHED) == set(ObligationState)
    assert not set(OBLIGATION_IN_FLIGHT) & set(OBLIGATION_FINISHED)


def test_active_cases_are_the_unresolved_and_the_ladder_runs_on_regional_ones():
    assert set(CASE_ACTIVE) == set(CaseState) - {CaseState.RESOLVED}
    assert set(CASE_ON_LADDER) == {CaseState.REGIONAL, CaseState.ESCALATED}


def test_every_state_has_chinese_and_english_words():
    for group, states in (("obligation_state", ObligationState), ("case_state", CaseState)):
        for language in ("zh-CN", "en"):
            assert set(LABELS[group][language]) == {s.value for s in states}, (group, language)


def test_open_turns_overdue_strictly_after_the_due_instant_with_its_audit_entry():
    assert obligation_due("open", DUE, DUE) is None
    moved = obligation_due("open", DUE, DUE + timedelta(seconds=1))
    assert moved is not None and (moved.state, moved.action, moved.detail) == ("overdue", "overdue", {"due_at": DUE.isoformat()})


def test_overdue_is_open_again_when_the_deadline_moved_later():
    moved = obligation_due("overdue", DUE, DUE - timedelta(days=1))
    assert moved is not None and (moved.state, moved.action) == ("open", "open")


def test_finished_obligations_do_not_move_with_the_clock():
    for state in OBLIGATION_FINISHED:
        assert obligation_due(state, DUE, DUE + timedelta(days=30)) is None


def test_fulfilment_records_the_state_it_left():
    moved = obligation_fulfilled("overdue", ObligationState.FULFILLED_LATE, {"report_id": "R1"})
    assert (moved.state, moved.action, moved.detail) == ("fulfilled_late", "fulfilled_late", {"report_id": "R1", "was": "overdue"})
    with pytest.raises(ValueError):
        obligation_fulfilled("open", ObligationState.CANCELLED, {})


def test_only_an_obligation_still_owed_can_be_cancelled():
    moved = obligation_cancelled("open", {"reason": "explained"})
    assert (moved.state, moved.action, moved.detail) == ("cancelled", "cancelled", {"reason": "explained"})
    with pytest.raises(ValueError):
        obligation_cancelled("fulfilled", {})


def test_case_goes_regional_then_escalated_then_resolved():
    regional = case_regional("open", hospitals=3)
    assert (regional.state, regional.action, regional.detail) == ("regional", "regional", {"hospitals": 3})
    escalated = case_escalated(regional.state, ["province_escalation"])
    assert escalated is not None and (escalated.state, escalated.detail) == ("escalated", {"fired": ["province_escalation"]})
    assert case_escalated("escalated", ["again"]) is None
    resolved = case_resolved(escalated.state, "stock arrived")
    assert (resolved.state, resolved.action, resolved.detail) == ("resolved", "resolved", {"note": "stock arrived"})


def test_impossible_case_moves_are_refused():
    with pytest.raises(ValueError):
        case_regional("regional", hospitals=3)
    with pytest.raises(ValueError):
        case_escalated("open", [])
    with pytest.raises(ValueError):
        case_resolved("resolved", None)
