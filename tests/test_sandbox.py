"""The sandbox for teacher-written functions: real worker processes, hostile code, no mocks."""

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from generation.sandbox.limits import DEFAULT_ALLOWED_IMPORTS, SandboxLimits
from generation.sandbox.runner import Sandbox, SandboxError, validate_function
from generation.sandbox.safe_namespace import SandboxViolation, make_builtins, new_globals
from generation.sandbox.static_check import find_violations

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = SandboxLimits(wall_seconds=1.0, cpu_seconds=0.5, memory_mb=256)
# filling 256 MB costs page-fault time on a busy machine: generous time, so memory hits first
ROOMY = SandboxLimits(wall_seconds=20.0, cpu_seconds=10.0, memory_mb=256)
# a busy machine may give a spinning worker little CPU per wall second: plenty of wall time, so that the
# CPU limit is what stops it (the wall-clock limit has its own test below)
CPU_BOUND = SandboxLimits(wall_seconds=15.0, cpu_seconds=0.5, memory_mb=256)
SAMPLES = [({"pursuers": {"P1": [0, 0]}, "target": [2, 0]}, None)]

GOOD_SOURCE = '''
import heapq
from collections import deque

def _step_towards(start, goal):
    dx = (goal[0] > start[0]) - (goal[0] < start[0])
    return {1: "E", -1: "W", 0: "stay"}[dx]

def move_direct(state, prev, **kwargs):
    """Step every pursuer one cell towards the target."""
    moves = {name: _step_towards(pos, state["target"]) for name, pos in state["pursuers"].items()}
    return {"moves": moves, "prev": prev, "options": kwargs}
'''


def src(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


# -- the calling convention ------------------------------------------------------------------


def test_good_function_returns_data_and_state_is_passed_by_value():
    state = {"pursuers": {"P1": [0, 0], "P2": [5, 0]}, "target": [2, 0]}
    mutating = src(
        """
        def clear_state(state, prev):
            state.clear()
            return len(state)
        """
    )
    with Sandbox(FAST) as sandbox:
        sandbox.load({"move_direct": GOOD_SOURCE, "clear_state": mutating})
        result = sandbox.call("move_direct", state, prev={"P1": "N"}, depth=2)
        assert result == {"moves": {"P1": "E", "P2": "W"}, "prev": {"P1": "N"}, "options": {"depth": 2}}
        assert sandbox.call("clear_state", state) == 0
    assert state["pursuers"]["P2"] == [5, 0]  # the worker got a copy, never the live object


def test_validate_accepts_good_function_and_keeps_outputs():
    report = validate_function("move_direct", GOOD_SOURCE, SAMPLES * 2, FAST, sample_kwargs=[{}, {"k": 1}])
    assert report.ok, report.reasons
    assert len(report.outputs) == 4
    assert report.outputs[3]["options"] == {"k": 1}


def test_classes_dataclasses_and_allowed_submodules_work():
    source = src(
        """
        import collections.abc
        from dataclasses import dataclass, field

        @dataclass
        class Node:
            cost: int
            path: list = field(default_factory=list)
            def __lt__(self, other):
                return self.cost < other.cost

        def cheapest(state, prev):
            nodes = sorted(Node(c) for c in state["costs"])
            return [nodes[0].cost, isinstance(state, collections.abc.Mapping)]
        """
    )
    report = validate_function("cheapest", source, [({"costs": [3, 1, 2]}, None)], FAST)
    assert report.ok, report.reasons
    assert report.outputs == [[1, True]]


# -- hostile functions: each rejected with a reason --------------------------------------

HOSTILE = {
    "import_os": ("import os\ndef f(state, prev):\n    return os.listdir('/')\n", "import of 'os'"),
    "import_socket": ("import socket\ndef f(state, prev):\n    return 1\n", "import of 'socket'"),
    "import_subprocess": ("def f(state, prev):\n    import subprocess\n    return 1\n", "import of 'subprocess'"),
    "from_import": ("from os import path\ndef f(state, prev):\n    return 1\n", "import of 'os'"),
    "relative_import": ("from . import x\ndef f(state, prev):\n    return 1\n", "relative import"),
    "dunder_import": ("def f(state, prev):\n    return __import__('os').getcwd()\n", "'__import__'"),
    "open_read": ("def f(state, prev):\n    return open('/etc/passwd').read()\n", "'open'"),
    "open_write": ("def f(state, prev):\n    open('owned.txt', 'w').write('x')\n", "'open'"),
    "subclasses": ("def f(state, prev):\n    return ().__class__.__bases__[0].__subclasses__()\n", "'__class__'"),
    "getattr": ("def f(state, prev):\n    return getattr(state, '__class__')\n", "'getattr'"),
    "attrgetter": ("from operator import attrgetter\ndef f(state, prev):\n    return 1\n", "'attrgetter'"),
    "format_walk": ("def f(state, prev):\n    return '{0.__class__}'.format(state)\n", "format string"),
    "frame_walk": ("def f(state, prev):\n    return str((i for i in []).gi_frame.f_back)\n", "'gi_frame'"),
    "eval": ("def f(state, prev):\n    return eval('1+1')\n", "'eval'"),
    "fork": ("import os\ndef f(state, prev):\n    return os.fork()\n", "import of 'os'"),
    "multiprocessing": ("import multiprocessing\ndef f(state, prev):\n    return 1\n", "import of 'multiprocessing'"),
    "del_hook": ("class A:\n    def __del__(self):\n        pass\ndef f(state, prev):\n    return 1\n", "'__del__'"),
    "match_attr": (
        "def f(state, prev):\n    match state:\n        case object(__class__=c):\n            return 1\n",
        "'__class__'",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_statically_forbidden_functions_are_rejected_with_a_reason(case):
    source, expected = HOSTILE[case]
    report = validate_function("f", source, SAMPLES, FAST)
    assert not report.ok
    assert report.failure_kind == "forbidden"
    assert any(expected in reason for reason in report.reasons), report.reasons


RUNTIME_FAILURES = {
    "infinite_loop": ("def f(state, prev):\n    while True:\n        pass\n", "timeout", "CPU time"),
    "swallows_cpu_signal": (
        "def f(state, prev):\n    while True:\n        try:\n            while True:\n                pass\n"
        "        except BaseException:\n            pass\n",
        "timeout",
        "timeout after",
    ),
    "c_level_loop": ("def f(state, prev):\n    return sum(range(10**12))\n", "timeout", "wall-clock"),
    "growing_list": (
        "def f(state, prev):\n    x = []\n    while True:\n        x.append(' ' * 1000000)\n",
        "memory",
        "memory limit 256 MB exceeded",
    ),
    "huge_string": ("def f(state, prev):\n    return len('a' * 10**10)\n", "memory", "memory limit"),
    "recursion": ("def f(state, prev):\n    return f(state, prev)\n", "exception", "RecursionError"),
    "returns_set": ("def f(state, prev):\n    return {'a': {1, 2}}\n", "bad_output", "result['a'] is a set"),
    "returns_object": ("def f(state, prev):\n    return f\n", "bad_output", "is a function"),
    "int_keys": ("def f(state, prev):\n    return {1: 'N'}\n", "bad_output", "JSON keys must be strings"),
    "nan": ("def f(state, prev):\n    return float('nan')\n", "bad_output", "not JSON"),
    "too_large": ("def f(state, prev):\n    return 'a' * 2_000_000\n", "bad_output", "the limit is 1000000"),
    "key_error": ("def f(state, prev):\n    return state['nope']\n", "exception", "KeyError: 'nope' (line 2"),
    "module_level_loop": ("while True:\n    pass\ndef f(state, prev):\n    return 1\n", "timeout", "timeout"),
}


@pytest.mark.parametrize("case", sorted(RUNTIME_FAILURES))
def test_functions_failing_at_run_time_are_rejected_and_the_host_is_unharmed(case, tmp_path):
    source, kind, expected = RUNTIME_FAILURES[case]
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    cwd = os.getcwd()
    limits = ROOMY if kind == "memory" else CPU_BOUND if expected == "CPU time" else FAST
    report = validate_function("f", source, SAMPLES, limits)
    assert not report.ok
    assert report.failure_kind == kind, report.reasons
    assert expected in report.reasons[0], report.reasons
    assert canary.read_text() == "intact" and os.getcwd() == cwd


def test_wall_time_limit_stops_a_slow_function_the_cpu_limit_allows():
    slow = src(
        """
        def slow(state, prev):
            total = 0
            for i in range(10**9):
                total += i
            return total
        """
    )
    limits = SandboxLimits(wall_seconds=0.5, cpu_seconds=30)
    report = validate_function("slow", slow, SAMPLES, limits)
    assert report.failure_kind == "timeout"
    assert "timeout after 0.5 s (wall-clock limit)" in report.reasons[0]


def test_proxied_modules_hide_private_members_and_string_attribute_helpers():
    source = src(
        """
        import operator, random, string, typing
        def probe(state, prev):
            return [hasattr(random, "_os"), hasattr(typing, "sys"), hasattr(operator, "attrgetter"),
                    hasattr(string, "Formatter"), hasattr(random, "choice")]
        """
    )
    report = validate_function("probe", source, SAMPLES, FAST)
    assert report.ok, report.reasons
    assert report.outputs == [[False, False, False, False, True]]


# -- the persistent worker ------------------------------------------------------------------


def test_worker_that_timed_out_is_replaced_and_serves_the_next_call():
    looping = "def spin(state, prev):\n    while True:\n        pass\n"
    with Sandbox(FAST) as sandbox:
        sandbox.load({"move_direct": GOOD_SOURCE, "spin": looping})
        first_pid = sandbox.worker_pid
        with pytest.raises(SandboxError) as caught:
            sandbox.call("spin", {})
        assert caught.value.kind == "timeout"
        result = sandbox.call("move_direct", SAMPLES[0][0])
        assert result["moves"] == {"P1": "E"}
        assert sandbox.worker_pid != first_pid
        assert "spin" in sandbox.loaded  # the replacement got every source replayed


def test_worker_killed_mid_call_reports_crashed_and_recovers():
    looping = "def spin(state, prev):\n    while True:\n        try:\n            pass\n        except BaseException:\n            pass\n"
    limits = SandboxLimits(wall_seconds=20, cpu_seconds=20)
    with Sandbox(limits) as sandbox:
        sandbox.load({"spin": looping, "move_direct": GOOD_SOURCE})
        pid = sandbox.worker_pid
        outcome = {}

        def run():
            try:
                sandbox.call("spin", {})
            except SandboxError as error:
                outcome["error"] = error

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=10)
        assert outcome["error"].kind == "crashed"
        assert "SIGKILL" in outcome["error"].message
        assert sandbox.call("move_direct", SAMPLES[0][0])["moves"] == {"P1": "E"}


def test_worker_that_died_between_calls_is_restarted_transparently():
    with Sandbox(FAST) as sandbox:
        sandbox.load({"move_direct": GOOD_SOURCE})
        pid = sandbox.worker_pid
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        assert sandbox.call("move_direct", SAMPLES[0][0])["moves"] == {"P1": "E"}
        assert sandbox.worker_pid != pid


def test_close_ends_the_worker_process():
    sandbox = Sandbox(FAST)
    sandbox.load({"move_direct": GOOD_SOURCE})
    pid = sandbox.worker_pid
    sandbox.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_load_rejects_forbidden_source_and_call_rejects_unknown_or_non_json_arguments():
    with Sandbox(FAST) as sandbox:
        with pytest.raises(SandboxError) as caught:
            sandbox.load({"f": HOSTILE["import_os"][0]})
        assert caught.value.kind == "forbidden" and "'f'" in caught.value.message
        sandbox.load({"move_direct": GOOD_SOURCE})
        with pytest.raises(KeyError, match="no function 'f' is loaded"):
            sandbox.call("f", {})
        with pytest.raises(TypeError, match="must be JSON data"):
            sandbox.call("move_direct", {"target": {1, 2}})


def test_sandbox_and_errors_pickle_for_ray_actors():
    sandbox = Sandbox(FAST)
    sandbox.load({"move_direct": GOOD_SOURCE})
    copy = pickle.loads(pickle.dumps(sandbox))
    sandbox.close()
    with copy:
        assert copy.call("move_direct", SAMPLES[0][0], prev=None)["moves"] == {"P1": "E"}
    error = pickle.loads(pickle.dumps(SandboxError("memory", "memory limit 512 MB exceeded")))
    assert (error.kind, error.message) == ("memory", "memory limit 512 MB exceeded")


# -- the layers one by one ------------------------------------------------------------------


def test_static_check_reports_syntax_errors_with_line_and_bad_signatures():
    allowed = DEFAULT_ALLOWED_IMPORTS
    assert find_violations("def f(state, prev):\n    return (\n", entry_points=["f"], allowed_imports=allowed)[
        0
    ].startswith("syntax error at line 2")
    assert find_violations("def g(state, prev): pass\n", entry_points=["f"], allowed_imports=allowed) == [
        "required function 'f' is not defined at top level"
    ]
    wrong = find_violations("def f(board): pass\n", entry_points=["f"], allowed_imports=allowed)
    assert "must take (state, prev)" in wrong[0]
    assert find_violations("async def f(state, prev): pass\n", entry_points=["f"], allowed_imports=allowed)
    ok = "import math, collections.abc\nfrom heapq import heappush\ndef f(state, prev, *, k=1, **kw): pass\n"
    assert find_violations(ok, entry_points=["f"], allowed_imports=allowed) == []


def test_restricted_namespace_refuses_imports_and_builtins_at_run_time():
    # the runtime layer on its own (no static check): these raise before doing anything
    namespace = new_globals("probe", make_builtins(["math"]))
    with pytest.raises(SandboxViolation, match="import of 'os' is not allowed"):
        exec("__import__('os')", namespace)  # noqa: S102 - harmless: refused before importing
    with pytest.raises(SandboxViolation, match="import of 'socket'"):
        exec("import socket", namespace)  # noqa: S102
    with pytest.raises(NameError):
        exec("open('/etc/passwd')", namespace)  # noqa: S102
    exec("import math\nvalue = math.sqrt(16)", namespace)  # noqa: S102
    assert namespace["value"] == 4.0


HARDENED_PROBE = """
import json, os, socket, sys
from generation.sandbox.hardening import harden_process
info = harden_process(memory_mb=256, scratch_dir=sys.argv[1])
results = {"info": info}
def attempt(label, action):
    try:
        action()
        results[label] = "allowed"
    except (OSError, MemoryError) as error:
        results[label] = type(error).__name__
def fork():
    if os.fork() == 0:
        os._exit(0)
def write():
    with open("written.txt", "w") as handle:
        handle.write("data" * 1000)
        handle.flush()
attempt("fork", fork)
attempt("write", write)
attempt("read_passwd", lambda: open("/etc/passwd").read())
def connect():
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(2)
    client.connect(("127.0.0.1", int(sys.argv[2])))
attempt("connect", connect)
attempt("allocate", lambda: bytearray(400 * 1024 * 1024))
print(json.dumps(results))
"""


def test_os_layer_blocks_fork_writes_network_and_memory(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o700)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        completed = subprocess.run(
            [sys.executable, "-c", HARDENED_PROBE, str(scratch), str(port)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
    finally:
        listener.close()
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout)
    assert results["fork"] != "allowed"
    assert results["write"] != "allowed"
    assert results["allocate"] == "MemoryError"
    if "namespace" in results["info"]["network"]:
        assert results["connect"] != "allowed"
    if results["info"]["chroot"]:
        assert results["read_passwd"] in ("FileNotFoundError", "PermissionError")
        assert results["info"]["uid"] != 0
    assert not (scratch / "written.txt").exists() or (scratch / "written.txt").stat().st_size == 0
