"""Function base: the teacher's reply is parsed, every function validated in the sandbox, rejections kept."""

import pytest

from configs.sandbox_schema import SandboxLimits
from generation.ld.envs.pursuit import resources
from generation.ld.envs.pursuit.env import PursuitEnv
from generation.ld.functions.function_base import FunctionBase, build_function_base
from generation.ld.functions.parse_base import FunctionBaseParseError, parse_function_base_reply
from generation.ld.functions.function_base import sample_states

LIMITS = SandboxLimits(wall_seconds=2.0, cpu_seconds=1.0, memory_mb=256)


@pytest.fixture(scope="module")
def env():
    return PursuitEnv()


@pytest.fixture(scope="module")
def states(env):
    return sample_states(env, env.train_seeds(2), steps=2)


def _build(reply, env, states):
    return build_function_base(reply, env.stages, states, LIMITS, env.check_stage_output, "req-1")


def test_expert_reply_builds_full_base(env, states, tmp_path):
    base, records = _build(resources.function_base_reply(), env, states)
    assert {f.stage for f in base.functions.values()} == set(env.stages)
    assert all(r.accepted for r in records), [r.reasons for r in records if not r.accepted]
    assert base.functions["guard_cell"].params == ["pursuer", "cell"]
    base.save(tmp_path / "base.json")
    again = FunctionBase.load(tmp_path / "base.json")
    assert again.signatures() == base.signatures()


HOSTILE = '''```python
def good_target(state, prev):
    """Every pursuer chases E1 when free."""
    return {p: "E1" for p in state["pursuers"]}

def loops(state, prev):
    """Never returns."""
    while True:
        pass

def shell(state, prev):
    """Imports os."""
    import os
    return os.listdir("/")

def hog(state, prev):
    """Allocates without bound."""
    x = []
    while True:
        x.append("a" * 10_000_000)

def bad_shape(state, prev):
    """Returns something that is not a plan."""
    return {"P9": "nowhere"}

def broken(state, prev:
    return 1

def no_docs(state, prev):
    return {}
```

## Manual
### good_target
Stage: target
Call: good_target()
### loops
Stage: target
Call: loops()
### shell
Stage: target
Call: shell()
### hog
Stage: target
Call: hog()
### bad_shape
Stage: target
Call: bad_shape()
### no_docs
Stage: target
'''


def test_hostile_functions_rejected_with_reasons(env, states):
    base, records = _build(HOSTILE, env, states)
    verdicts = {r.name: (r.accepted, " ".join(r.reasons)) for r in records}
    assert verdicts["good_target"][0] is True
    assert "timeout" in verdicts["loops"][1]
    assert "os" in verdicts["shell"][1]
    assert "memory" in verdicts["hog"][1]
    assert "target result" in verdicts["bad_shape"][1]
    assert "docstring" in verdicts["no_docs"][1]
    assert any("syntax error" in r.reasons[0] for r in records if r.name == "<unparsed>")
    assert list(base.functions) == ["good_target"]  # no move function: the pipeline refuses this base


def test_reply_without_code_is_a_clear_error():
    with pytest.raises(FunctionBaseParseError, match="code block"):
        parse_function_base_reply("Sure! Here are some ideas for functions.")


def test_manual_entries_attach_stage_and_example():
    drafts, problems = parse_function_base_reply(resources.function_base_reply())
    assert not problems
    by_name = {d.name: d for d in drafts}
    assert by_name["target_evader"].stage == "target"
    assert by_name["target_evader"].example.startswith("Call: target_evader(")
    assert by_name["move_direct"].stage == "move"
