"""Measure the sandbox's per-call overhead: `python -m generation.sandbox.overhead [calls]`.

Times a trivial function (state in, small dict out) through a persistent worker, so
what is measured is the sandbox's own cost: JSON both ways, two pipe hops, the CPU guard.
"""

import sys
import time

from generation.sandbox.limits import SandboxLimits
from generation.sandbox.runner import Sandbox

TRIVIAL_SOURCE = '''
def pick_move(state, prev, **kwargs):
    """Return the first legal move."""
    return {"P1": state["legal"][0], "step": state["step"]}
'''


def measure(calls: int = 5000) -> dict[str, float]:
    state = {"legal": ["N", "S", "E", "W", "stay"], "step": 0, "grid": [[0] * 8 for _ in range(8)]}
    with Sandbox(SandboxLimits()) as sandbox:
        started = time.perf_counter()
        sandbox.load({"pick_move": TRIVIAL_SOURCE})
        startup = time.perf_counter() - started
        for _ in range(200):  # warm up
            sandbox.call("pick_move", state)
        started = time.perf_counter()
        for step in range(calls):
            state["step"] = step
            sandbox.call("pick_move", state, prev={"P1": "N"})
        per_call = (time.perf_counter() - started) / calls
    return {"worker_start_and_load_ms": startup * 1e3, "per_call_us": per_call * 1e6, "calls": calls}


if __name__ == "__main__":
    result = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
    print(
        f"worker start + load: {result['worker_start_and_load_ms']:.1f} ms; "
        f"per call: {result['per_call_us']:.1f} us over {result['calls']} calls"
    )
