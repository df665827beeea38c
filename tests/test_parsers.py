"""Reply parsers on well-formed, malformed, truncated and adversarial replies."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generation.prompts.calls import Call, ParseError, parse_call
from generation.ld.kd_prompts import parse_action, render_action

SIGS = {"target_evader": ["evader"], "target_nearest": [], "guard_cell": ["pursuer", "cell"]}


def test_plain_call():
    assert parse_call('Call: target_evader(evader="E2")', SIGS) == Call("target_evader", {"evader": "E2"})


def test_reasoning_then_call_uses_last_call_line():
    text = "Reason: E2 first.\nCall: target_nearest()\nOn second thought:\nCall: guard_cell(pursuer='P2', cell=(3, 4))"
    assert parse_call(text, SIGS) == Call("guard_cell", {"pursuer": "P2", "cell": [3, 4]})


def test_render_round_trip():
    call = Call("guard_cell", {"pursuer": "P1", "cell": [1, 2]})
    assert parse_call(call.render(), SIGS) == call


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("I would chase the nearest evader.", "no line"),
    ("Call: target_evader(evader=", "syntax"),  # truncated mid-call
    ("Call: target_evader(evader='E2'", "syntax"),
    ("Call: os.system('rm -rf /')", "plain function call"),
    ("Call: __import__('os')", "not among the candidates"),
    ("Call: target_evader('E2')", "positional"),
    ("Call: target_evader(evader=open('/etc/passwd'))", "not a literal"),
    ("Call: target_evader(evader=E2)", "not a literal"),
    ("Call: target_evader(**{'evader': 'E1'})", "kwargs"),
    ("Call: target_evader(who='E1')", "unknown argument"),
    ("Call: guard_cell(pursuer='P1')", "missing"),
    ("Call: spread_out()", "not among the candidates"),
    ("Call: target_nearest() + target_nearest()", "plain function call"),
    ("Call: " + "(" * 5000, "syntax"),
])
def test_malformed_replies_are_parse_errors(text, reason):
    with pytest.raises(ParseError, match=reason):
        parse_call(text, SIGS)


def test_huge_reply_rejected():
    with pytest.raises(ParseError, match="longer"):
        parse_call("x" * 50_000 + "\nCall: target_nearest()", SIGS)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parse_call_never_crashes(text):
    try:
        call = parse_call(text, SIGS)
    except ParseError:
        return
    assert call.name in SIGS and set(call.kwargs) == set(SIGS[call.name])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_parse_action_never_crashes(text):
    try:
        parse_action(text)
    except ParseError:
        pass


def test_action_round_trip_and_errors():
    decision = {"P1": "N", "P2": "stay"}
    assert parse_action(render_action(decision)) == decision
    for bad in ("", "Action: {P1: N}", "nothing here", 'Action: {"P1": "N"'):
        with pytest.raises(ParseError):
            parse_action(bad)
