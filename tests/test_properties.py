"""Property-based tests (hypothesis) over everything that reads untrusted text: the reply parsers
(function calls, KD actions, the function-base reply), the answer extractors (instructions, emergency
prompts) and the config loader. Properties: arbitrary input fails only with the documented error
type (never a crash of another kind), and what we render parses back to the same value.

Run: .venv/bin/pytest tests/test_properties.py
"""

from __future__ import annotations

import json
import keyword

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from configs.loader import ConfigError, load_config, parse_override
from configs.schema import RunConfig
from generation.ld.functions.parse_base import FunctionBaseParseError, parse_function_base_reply
from generation.prompts.calls import CALL_PREFIX, MAX_REPLY_CHARS, Call, ParseError, parse_call
from generation.ld.emergency_prompts import parse_emergency_prompt
from generation.ld.kd_prompts import ACTION_PREFIX, parse_action, render_action

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SIGNATURES = {"move_direct": [], "chase": ["target", "speed"], "guard": ["cell"]}

# Python keywords ("or", "if") are not names: a call to one is a syntax error, not an unknown function
identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True).filter(lambda n: not keyword.iskeyword(n))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10),
                                     st.floats(allow_nan=False, allow_infinity=False)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=4)),
                           max_leaves=10)
noise_lines = st.lists(st.text(max_size=60).filter(lambda s: not s.strip().lower().startswith("call:")),
                       max_size=5)


# -- function-call replies (LD) -----------------------------------------------------------------------

@SETTINGS
@given(st.text(max_size=400))
def test_parse_call_fails_only_with_parse_error(text):
    try:
        call = parse_call(text, SIGNATURES)
    except ParseError as exc:
        assert str(exc)
    else:
        assert call.name in SIGNATURES and set(call.kwargs) == set(SIGNATURES[call.name])


@SETTINGS
@given(st.text(max_size=200).map(lambda t: f"{CALL_PREFIX} {t}"))
def test_parse_call_on_anything_after_the_prefix(text):
    try:
        parse_call(text, SIGNATURES)
    except ParseError:
        pass


@SETTINGS
@given(st.sampled_from(["chase", "guard", "move_direct"]), st.data(), noise_lines, noise_lines)
def test_rendered_calls_parse_back_whatever_surrounds_them(name, data, before, after):
    # any JSON value: true/false/null and characters beyond U+FFFF included (both once failed to parse back)
    kwargs = {p: data.draw(json_values, label=p) for p in SIGNATURES[name]}
    call = Call(name, kwargs)
    reply = "\n".join([*before, call.render(), *after])
    parsed = parse_call(reply, SIGNATURES)
    assert parsed == Call(name, json.loads(json.dumps(kwargs)))


@SETTINGS
@given(identifiers.filter(lambda n: n not in SIGNATURES))
def test_unknown_functions_are_refused_by_name(name):
    with pytest.raises(ParseError, match="not among the candidates"):
        parse_call(f"{CALL_PREFIX} {name}()", SIGNATURES)


def test_oversized_and_deeply_nested_replies_are_refused_not_crashed():
    with pytest.raises(ParseError, match="longer than"):
        parse_call("x" * (MAX_REPLY_CHARS + 1), SIGNATURES)
    with pytest.raises(ParseError):
        parse_call(f"{CALL_PREFIX} guard(cell={'[' * 5000}1{']' * 5000})", SIGNATURES)
    with pytest.raises(ParseError):
        parse_action(f"{ACTION_PREFIX} {'[' * 5000}{']' * 5000}")


# -- action replies (KD) ------------------------------------------------------------------------------

@SETTINGS
@given(st.text(max_size=300))
def test_parse_action_fails_only_with_parse_error(text):
    try:
        parse_action(text)
    except ParseError as exc:
        assert str(exc)


@SETTINGS
@given(json_values, noise_lines)
def test_rendered_actions_parse_back(decision, before):
    reply = "\n".join([*(line.replace(ACTION_PREFIX, "") for line in before), render_action(decision)])
    assert parse_action(reply) == decision


# -- function-base replies -------------------------------------------------------------------------------

code_bodies = st.one_of(st.text(max_size=200),
                        st.builds(lambda n, body: f"def {n}(state, prev):\n    {body}\n", identifiers,
                                  st.text(max_size=40)))


@SETTINGS
@given(st.text(max_size=100), code_bodies, st.text(max_size=200))
def test_function_base_parser_fails_only_with_its_error(head, code, manual):
    reply = f"{head}\n```python\n{code}\n```\n## Manual\n{manual}"
    try:
        drafts, problems = parse_function_base_reply(reply)
    except FunctionBaseParseError as exc:
        assert str(exc)
    else:
        assert drafts and all(d.name and d.source for d in drafts)
        assert all(isinstance(p, str) for p in problems)


@SETTINGS
@given(st.text(max_size=300))
def test_function_base_parser_on_arbitrary_text(text):
    try:
        parse_function_base_reply(text)
    except FunctionBaseParseError:
        pass


# -- answer extractors: instructions and emergency prompts ---------------------------------------------------

@pytest.fixture(scope="module")
def envs():
    from generation.ld.envs.pursuit.env import PursuitEnv
    from generation.ld.envs.twentyone.env import TwentyOneEnv

    return [PursuitEnv(), TwentyOneEnv()]


@SETTINGS
@given(seed=st.integers(0, 10**6))
def test_instructions_round_trip_through_their_text(envs, seed):
    for env in envs:
        instruction = env.sample_instruction(seed)
        assert env.parse_instruction(instruction.text) == instruction


@SETTINGS
@given(st.text(max_size=120))
def test_instruction_extractors_fail_only_with_value_error(envs, text):
    for env in envs:
        try:
            env.parse_instruction(text)
        except ValueError as exc:
            assert str(exc)


@SETTINGS
@given(st.text(max_size=300))
def test_emergency_prompt_extractor_fails_only_with_value_error(text):
    from generation.ld.emergency_prompts import EMERGENCY_TASK

    for prompt in (text, EMERGENCY_TASK + text):
        try:
            kind, body, state = parse_emergency_prompt(prompt)
        except ValueError as exc:
            assert str(exc)
        else:
            assert isinstance(kind, str) and isinstance(body, str)


# -- config loader -----------------------------------------------------------------------------------------

@SETTINGS
@given(st.text(max_size=60))
def test_any_override_text_parses_or_fails_with_config_error(text):
    try:
        path, _ = parse_override(text)
    except ConfigError as exc:
        assert str(exc)
    else:
        assert path and all(path)


@SETTINGS
@given(st.sampled_from(["eval.episodes", "generation.train_episodes", "teacher.temperature", "teacher.backend",
                        "training.max_steps", "sandbox.memory_mb", "eval.policies", "run.name",
                        "teacher.cache.mode", "wandb.mode", "task.options", "teacher.limits.window_s"]),
       st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.text(max_size=12),
                 st.lists(st.text(max_size=6), max_size=3)))
def test_the_loader_accepts_or_refuses_naming_the_key(key, value):
    override = f"{key}={json.dumps(value)}"
    try:
        cfg = load_config(None, [override], RunConfig)
    except ConfigError as exc:
        assert key in str(exc) or key.rsplit(".", 1)[-1] in str(exc), str(exc)
    else:
        section, *rest = key.split(".")
        node = getattr(cfg, section)
        for part in rest:
            node = getattr(node, part)
        assert node is not None


@SETTINGS
@given(st.lists(st.from_regex(r"[a-z_]{1,8}(\.[a-z_]{1,8}){0,2}", fullmatch=True), min_size=1, max_size=3),
       st.integers(0, 5))
def test_unknown_keys_never_crash_the_loader(keys, value):
    try:
        load_config(None, [f"{k}={value}" for k in keys], RunConfig)
    except ConfigError as exc:
        assert str(exc)


@SETTINGS
@given(st.integers(1, 10**6), st.floats(0.0, 2.0))
def test_valid_values_survive_a_save_and_reload(tmp_path_factory, episodes, temperature):
    from configs.loader import save_resolved

    cfg = load_config(None, [f"eval.episodes={episodes}", f"teacher.temperature={temperature!r}"], RunConfig)
    path = save_resolved(cfg, tmp_path_factory.mktemp("cfg"))
    again = load_config(path, [], RunConfig)
    assert again == cfg
