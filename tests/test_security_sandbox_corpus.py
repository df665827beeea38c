"""More hostile teacher-written functions, completing the issue's list next to tests/test_sandbox.py
(31 cases there): fork bombs, sockets, writes to /etc, __import__ tricks, ctypes, environment
variables, slow drip. Every one is rejected with a reason; the host's files, environment and working
directory are unharmed and nothing it holds (a secret in its environment) comes back.

Run: .venv/bin/pytest tests/test_security_sandbox_corpus.py
"""

from __future__ import annotations

import os
import textwrap

import pytest

from generation.sandbox.limits import SandboxLimits
from generation.sandbox.runner import validate_function

FAST = SandboxLimits(wall_seconds=1.0, cpu_seconds=0.5, memory_mb=256)
SAMPLES = [({"pursuers": {"P1": [0, 0]}, "target": [2, 0]}, None)]
HOST_SECRET = "host-secret-value-5d8a1f"


def fn(body: str) -> str:
    return "def f(state, prev):\n" + textwrap.indent(textwrap.dedent(body).strip(), "    ") + "\n"


HOSTILE_EXTRA = {
    # process creation
    "fork_bomb": "import os\n" + fn("while True:\n    os.fork()"),
    "fork_bomb_via_builtins": fn("while True:\n    __builtins__['__import__']('os').fork()"),
    "pty_spawn": "import pty\n" + fn("pty.spawn('/bin/sh')"),
    "os_system_via_sys_modules": "import sys\n" + fn("return sys.modules['os'].system('true')"),
    # network
    "socket_connect": fn("import socket\ns = socket.socket()\ns.connect(('127.0.0.1', 22))"),
    "urllib_fetch": "import urllib.request\n" + fn("return urllib.request.urlopen('http://example.com').read()"),
    "http_client": "import http.client\n" + fn("return http.client.HTTPConnection('example.com')"),
    # files
    "write_etc": fn("open('/etc/ld_owned', 'w').write('x')"),
    "write_etc_via_io": "import io\n" + fn("io.open('/etc/ld_owned', 'w').write('x')"),
    "pathlib_write": "import pathlib\n" + fn("pathlib.Path('/etc/ld_owned').write_text('x')"),
    "shutil_rmtree": "import shutil\n" + fn("shutil.rmtree('/tmp')"),
    # __import__ tricks
    "builtins_dict_import": fn("return __builtins__['__import__']('os').getcwd()"),
    "globals_builtins": fn("return globals()['__builtins__']"),
    "importlib": "import importlib\n" + fn("return importlib.import_module('os').getcwd()"),
    "builtins_module": "import builtins\n" + fn("return builtins.open('/etc/passwd').read()"),
    "vars_walk": fn("return vars(state)"),
    "lambda_globals": fn("return (lambda: 0).__globals__"),
    "func_code_swap": fn("f.__code__ = None"),
    "exec_compiled": fn("exec(compile('import os', 'x', 'exec'))"),
    "type_new_class": fn("return type('X', (), {'__init_subclass__': print})"),
    "string_attr_via_dict": fn("return state.__dict__"),
    # native code
    "ctypes": "import ctypes\n" + fn("return ctypes.CDLL(None).getpid()"),
    "ctypes_util": "from ctypes import util\n" + fn("return 1"),
    "cffi": "import cffi\n" + fn("return 1"),
    "mmap": "import mmap\n" + fn("return 1"),
    # environment and host data
    "os_environ": "import os\n" + fn("return dict(os.environ)"),
    "os_getenv": "from os import getenv\n" + fn("return getenv('LD_HOST_SECRET')"),
    "sys_argv_path": "import sys\n" + fn("return sys.path"),
    "inspect_frames": "import inspect\n" + fn("return str(inspect.stack())"),
    "gc_objects": "import gc\n" + fn("return len(gc.get_objects())"),
    "pickle_payload": "import pickle\n" + fn("return pickle.loads(b'cos\\nsystem\\n(S\\'true\\'\\ntR.')"),
    "signal_handler": "import signal\n" + fn("signal.signal(signal.SIGXCPU, signal.SIG_IGN)"),
    "threading": "import threading\n" + fn("threading.Thread(target=lambda: None).start()"),
    "asyncio_subprocess": "import asyncio\n" + fn("return asyncio.create_subprocess_exec('true')"),
    # resources (run time)
    "infinite_recursion_in_helper": "def g(n):\n    return g(n + 1)\n" + fn("return g(0)"),
    "huge_allocation": fn("return len(bytearray(10**11))"),
    "huge_list_multiply": fn("return len([0] * 10**10)"),
    "exponential_string": fn("s = 'ab'\nwhile True:\n    s = s + s"),
    "slow_drip_busy": fn("n = 0\nwhile True:\n    for _ in range(1000):\n        n += 1\n    state['n'] = n"),
    "slow_drip_sleep": "import time\n" + fn("while True:\n    time.sleep(0.01)"),
    "slow_drip_generator": fn("def drip():\n    while True:\n        yield 1\nreturn sum(drip())"),
    "output_flood": fn("return ['x' * 1000] * 100000"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_EXTRA))
def test_every_hostile_function_is_rejected_and_the_host_unharmed(case, tmp_path, monkeypatch):
    monkeypatch.setenv("LD_HOST_SECRET", HOST_SECRET)
    canary = tmp_path / "canary.txt"
    canary.write_text("intact")
    cwd, environ = os.getcwd(), dict(os.environ)
    report = validate_function("f", HOSTILE_EXTRA[case], SAMPLES, FAST)
    assert not report.ok, (case, report)
    assert report.failure_kind and report.reasons and all(r.strip() for r in report.reasons)
    assert HOST_SECRET not in repr(report)  # nothing of the host came back as data
    assert canary.read_text() == "intact" and os.getcwd() == cwd and dict(os.environ) == environ
    assert not os.path.exists("/etc/ld_owned")


def test_the_combined_corpus_has_at_least_twenty_cases_per_the_issue():
    from test_sandbox import HOSTILE, RUNTIME_FAILURES

    hostile_total = len(HOSTILE) + len(RUNTIME_FAILURES) + len(HOSTILE_EXTRA)
    assert hostile_total >= 20 and len(HOSTILE_EXTRA) >= 20
