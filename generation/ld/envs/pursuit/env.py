"""The pursuit game: pursuers (the policy) chase seeded fleeing evaders on a grid with walls.

One step: every pursuer picks N/S/E/W/stay (a move into a wall or the edge is a legal stay), the
evaders pick their moves from the same pre-step positions, and all move at once. An evader is
captured when a pursuer ends on its cell or the two swap cells. An illegal joint decision (not a
dict of exactly the pursuers to N/S/E/W/stay) counts as invalid and becomes "all stay".
The episode ends when every evader is captured, at the step limit, or as soon as the instruction
can no longer succeed (wrong evader captured first; the guard left its cell after reaching it).
With `emergencies.probability` > 0 an emergency may be announced mid-episode (emergencies.py); an
emergency of the `evader` family brings a new evader, E<n+1>, with its own rule (new_evaders.py).
"""

from __future__ import annotations

import functools
import random
from typing import Any

from configs.task_schema import EMERGENCY_KINDS, known_kinds_hint
from generation.ld.envs.base import DecisionEnv, Emergency, Instruction, StepResult
from generation.ld.envs.pursuit import emergencies as em
from generation.ld.envs.pursuit import instructions as ins
from generation.ld.envs.pursuit import new_evaders
from generation.ld.envs.pursuit.config import PursuitConfig
from generation.ld.envs.pursuit.evaders import choose_evader_moves
from generation.ld.envs.pursuit.grid import ACTIONS, Cell, Grid, generate_rows
from generation.ld.envs.pursuit.text import parse_state_text, render_state


@functools.lru_cache(maxsize=256)
def _map_for(seed: int, width: int, height: int, density: float) -> Grid:
    return Grid(generate_rows(random.Random(f"pursuit:{seed}:map"), width, height, density))


def captured_evaders(old_p: dict[str, Cell], new_p: dict[str, Cell], old_e: dict[str, Cell],
                     new_e: dict[str, Cell]) -> list[str]:
    """Evaders caught by a simultaneous move: a pursuer ends on the evader's cell, or the two swap."""
    pairs = [(old_p[p], new_p[p]) for p in new_p]
    return [e for e in sorted(new_e, key=lambda n: int(n[1:]))
            if any(new_e[e] == after or (new_e[e] == before and after == old_e[e]) for before, after in pairs)]


class PursuitEnv(DecisionEnv):
    name = "pursuit"
    stages = ["target", "move"]
    action_question = "Decide the joint action."  # one move per pursuer

    def __init__(self, config: PursuitConfig | None = None):
        self.config = config or PursuitConfig()
        self.pursuer_names = [f"P{i}" for i in range(1, self.config.n_pursuers + 1)]
        self.evader_names = [f"E{i}" for i in range(1, self.config.n_evaders + 1)]
        self._grid: Grid | None = None
        if self.config.emergencies.probability > 0:
            self.breakdown_keys = ("kind", "emergency")

    # ---- episode setup -------------------------------------------------------------------------
    def _map(self, seed: int) -> Grid:
        c = self.config
        return _map_for(seed, c.width, c.height, c.obstacle_density)

    def sample_instruction(self, seed: int) -> Instruction:
        rng = random.Random(f"pursuit:{seed}:instruction")
        return ins.sample_instruction(rng, self.config, self._map(seed).free)

    def parse_instruction(self, text: str) -> Instruction:
        return ins.parse_instruction(text)

    def reset(self, seed: int, instruction: Instruction) -> None:
        grid = self._map(seed)
        ins.check_instruction(instruction, self.config, set(grid.free))
        rng = random.Random(f"pursuit:{seed}:start")
        starts = rng.sample(grid.free, self.config.n_pursuers)
        danger = grid.distances(starts)
        rest = [c for c in grid.free if c not in starts]
        rng.shuffle(rest)
        far = [c for c in rest if danger.get(c, 0) >= self.config.min_start_distance]
        near = sorted((c for c in rest if c not in far), key=lambda c: -danger.get(c, 0))
        self._start(grid, seed, instruction, dict(zip(self.pursuer_names, starts)),
                    dict(zip(self.evader_names, (far + near)[: self.config.n_evaders])), [], 0, self.config.max_steps)
        self._planned = em.plan_emergency(seed, self.config.emergencies)

    def load_state(self, state: dict[str, Any], instruction: Instruction, seed: int = 0) -> None:
        """Start an episode from a given position (`state()` / `parse_state_text` data): tests, replays.

        `seed` seeds the evaders' moves from here on. Emergencies in the state are active at once.
        """
        grid = Grid(state["grid"])
        pursuers = {n: (int(c[0]), int(c[1])) for n, c in state["pursuers"].items()}
        evaders = {n: (int(c[0]), int(c[1])) for n, c in state["evaders"].items()}
        if sorted(pursuers) != sorted(self.pursuer_names):
            raise ValueError(f"state has pursuers {sorted(pursuers)}; this game has {self.pursuer_names}")
        newcomers = [e for e in state.get("emergencies", []) if EMERGENCY_KINDS.get(e.get("kind")) == "evader"]
        expected = [f"E{i}" for i in range(1, self.config.n_evaders + len(newcomers) + 1)]
        if sorted([*evaders, *state["captured"]]) != sorted(expected):
            raise ValueError(f"state has evaders {sorted([*evaders, *state['captured']])}; "
                             f"this game has {expected}")
        bad = [n for n, c in [*pursuers.items(), *evaders.items()] if not grid.is_free(c)]
        if bad:
            raise ValueError(f"{bad} stand on a wall or off the map")
        ins.check_instruction(instruction, self.config, set(grid.free))
        self._start(grid, seed, instruction, pursuers, evaders, list(state["captured"]), int(state["step"]),
                    int(state["max_steps"]))
        for entry in state.get("emergencies", []):
            if entry.get("kind") not in EMERGENCY_KINDS:
                raise ValueError(f"unknown emergency kind {entry.get('kind')!r}; {known_kinds_hint()}")
            self._announce(entry["kind"], [(int(c[0]), int(c[1])) for c in entry["cells"]])

    def _start(self, grid: Grid, seed: int, instruction: Instruction, pursuers: dict[str, Cell],
               evaders: dict[str, Cell], captured: list[str], step: int, max_steps: int) -> None:
        self._grid, self.seed, self.instruction = grid, seed, instruction
        self._pursuers, self._evaders, self._captured = pursuers, evaders, captured
        self._rng = random.Random(f"pursuit:{seed}:evaders")
        self._step, self._max_steps = step, max_steps
        self._decisions = self._invalid = 0
        self._done = self._success = False
        p = instruction.params
        self._guard_reached = instruction.kind == "guard" and list(pursuers[p["pursuer"]]) == list(p["cell"])
        self._reason = ""
        self._planned: em.Planned | None = None
        self._active: list[tuple[Emergency, list[Cell]]] = []
        self._sprinters: dict[str, str] = {}  # evader name -> emergency id, for the `evader` family
        self.evader_names = [f"E{i}" for i in range(1, self.config.n_evaders + 1)]
        self._pursuer_grid = self._evader_grid = grid  # emergencies replace them with walled copies

    def _newcomer_name(self, index: int) -> str:
        """The name of the index-th (0-based) evader brought by an `evader` emergency: E<n + index + 1>."""
        return f"E{self.config.n_evaders + index + 1}"

    def _announce(self, kind: str, cells: list[Cell]) -> None:
        """Activate an emergency: from now on the state shows it and the moves obey it.

        For the `evader` family the cells are where its evader stands (updated every step, the cell
        where it was caught once captured); the evader itself must already be in `self._evaders`.
        """
        newcomer = self._newcomer_name(len(self._sprinters)) if EMERGENCY_KINDS[kind] == "evader" else ""
        emergency = Emergency(f"{kind}-{len(self._active) + 1}", kind,
                              em.emergency_text(kind, self._step, cells, newcomer))
        self._active.append((emergency, cells))
        if newcomer:
            self._sprinters[newcomer] = emergency.id
            if newcomer not in self.evader_names:
                self.evader_names.append(newcomer)
        blocked = {c for e, cs in self._active for c in cs if EMERGENCY_KINDS[e.kind] == "impassable"}
        self._pursuer_grid = Grid(em.blocked_rows(self._grid.rows, blocked)) if blocked else self._grid
        walls = {c for e, cs in self._active for c in cs if EMERGENCY_KINDS[e.kind] != "evader"}
        self._evader_grid = Grid(em.blocked_rows(self._grid.rows, walls))

    def _maybe_announce(self) -> None:
        if self._planned is None or self._done or self._step != self._planned.onset:
            return
        p = self.instruction.params
        protected = {tuple(p["cell"])} if self.instruction.kind == "guard" else set()
        rng = random.Random(f"pursuit:{self.seed}:emergency-cells")
        if EMERGENCY_KINDS[self._planned.kind] == "evader":
            occupied = {*self._pursuers.values(), *self._evaders.values(), *protected}
            cell = new_evaders.spawn_cell(self._grid, rng, list(self._pursuers.values()), occupied,
                                          self.config.min_start_distance)
            self._evaders[self._newcomer_name(len(self._sprinters))] = cell
            return self._announce(self._planned.kind, [cell])
        cells = em.choose_cells(self._grid, rng, self._planned.kind, list(self._pursuers.values()),
                                list(self._evaders.values()), protected)
        if cells:
            self._announce(self._planned.kind, cells)

    def emergencies(self) -> list[Emergency]:
        return [e for e, _ in self._active]

    def _require_episode(self) -> Grid:
        if self._grid is None:
            raise RuntimeError("call reset(seed, instruction) before using the pursuit env")
        return self._grid

    # ---- views ---------------------------------------------------------------------------------
    def rules_text(self) -> str:
        c = self.config
        return (
            f"Pursuit on a {c.width}x{c.height} grid. Cells are x,y with x the column (0 = west) and y the row "
            f"(0 = north, the first map row); '#' is a wall, '.' is free. You control pursuers "
            f"{', '.join(self.pursuer_names)}; evaders {', '.join(self.evader_names)} flee. Each step every "
            "pursuer moves N (y-1), S (y+1), E (x+1), W (x-1) or stays; moving into a wall or off the map "
            "means staying. Evaders move at the same time, each with probability "
            f"{c.evader_move_prob:g}, to the neighbouring cell farthest from the nearest pursuer. An evader is "
            "captured when a pursuer ends on its cell or they swap cells. The decision of a step is a JSON "
            'object giving every pursuer an action, e.g. {"P1":"N","P2":"stay"}; anything else counts as '
            f"invalid and all pursuers stay. The episode ends when all evaders are captured, after "
            f"{c.max_steps} steps, or as soon as the instruction can no longer be met.{self._emergency_rules()} "
            "Instructions: 'Capture all evaders.'; 'Capture Ek first, then capture all "
            "evaders.' (Ek must be captured no later than any other evader); 'Pk must guard cell [x, y] while "
            "the others capture all evaders.' (once Pk reaches the cell it must never leave it, and it must be "
            "on it when the last evader is captured). State lines: 'P1 2,3' a pursuer; 'E1 4,5 free near 2' a "
            "free evader and its distance to the nearest pursuer; 'E2 captured 1st' the capture order."
        )

    def _emergency_rules(self) -> str:
        if self.config.emergencies.probability <= 0:
            return ""
        return (" During an episode an emergency may be announced: a text says what happened and what the new "
                "rule is. The state then shows it as 'emergency (<kind>) x,y x,y ...' (as data: state[\"emergencies\"] "
                "= [{\"kind\": ..., \"cells\": [[x, y], ...]}])." + self._newcomer_rules())

    def _newcomer_rules(self) -> str:
        """Only where the config can bring the `evader` family, so other configs keep their rules text."""
        pools = {*self.config.emergencies.train_pool, *self.config.emergencies.heldout_kinds}
        if not any(EMERGENCY_KINDS.get(k) == "evader" for k in pools):
            return ""
        return (" An emergency may also bring a new kind of evader, named after the last one (e.g. E3); its "
                "emergency line then gives the cell where that evader stands, and it counts among all evaders.")

    def state(self) -> dict[str, Any]:
        grid = self._require_episode()
        state = {"width": grid.width, "height": grid.height, "grid": list(grid.rows), "step": self._step,
                 "max_steps": self._max_steps,
                 "pursuers": {n: list(c) for n, c in self._pursuers.items()},
                 "evaders": {n: list(c) for n, c in self._evaders.items()},
                 "captured": list(self._captured)}
        if self._active:  # the key appears with the first emergency: the plain game's state is unchanged
            state["emergencies"] = [{"kind": e.kind, "cells": [list(c) for c in cells]} for e, cells in self._active]
        return state

    def render(self) -> str:
        return render_state(self.state(), self._require_episode())

    def parse_state_text(self, text: str) -> dict[str, Any]:
        return parse_state_text(text)

    # ---- decisions -----------------------------------------------------------------------------
    def legal_decisions(self) -> dict[str, list[str]]:
        return {n: list(ACTIONS) for n in self.pursuer_names}

    def is_legal(self, decision: Any) -> bool:
        return (isinstance(decision, dict) and set(decision) == set(self.pursuer_names)
                and all(isinstance(a, str) and a in ACTIONS for a in decision.values()))

    def default_decision(self) -> dict[str, str]:
        return {n: "stay" for n in self.pursuer_names}

    def random_legal_decision(self, rng: random.Random) -> dict[str, str]:
        return {n: rng.choice(ACTIONS) for n in self.pursuer_names}

    def check_stage_output(self, stage: str, state: dict[str, Any], output: Any) -> str | None:
        if stage != "target":
            return super().check_stage_output(stage, state, output)
        if not isinstance(output, dict) or set(output) != set(state["pursuers"]):
            return f"target result must map every pursuer {sorted(state['pursuers'])} to a target: {output!r}"
        grid = Grid(state["grid"])
        for pursuer, target in output.items():
            is_evader = isinstance(target, str) and (target in self.evader_names or target in state["evaders"])
            is_cell = (isinstance(target, (list, tuple)) and len(target) == 2
                       and all(isinstance(v, int) for v in target) and grid.is_free(tuple(target)))
            if not (is_evader or is_cell):
                return f"target of {pursuer} must be an evader name or a free cell [x, y], got {target!r}"
        return None

    def step(self, decision: Any) -> StepResult:
        grid = self._require_episode()
        if self._done:
            raise RuntimeError("the episode is over; call reset before stepping again")
        decision, invalid = self._admit(decision)
        old_p = self._pursuers
        new_p = {n: self._pursuer_grid.move(c, decision[n]) for n, c in old_p.items()}
        c = self.config
        old_e = self._evaders
        # sprinters run first, from the evaders' pre-step cells: so a function can predict them from the state
        paths = {e: new_evaders.sprinter_path(self._evader_grid, list(old_p.values()), cell,
                                              {v for o, v in old_e.items() if o != e})
                 for e, cell in old_e.items() if e in self._sprinters}
        plain = {e: cell for e, cell in old_e.items() if e not in paths}
        new_e = choose_evader_moves(self._evader_grid, list(old_p.values()), plain, self._rng,
                                    c.evader_move_prob, c.evader_noise, occupied={p[-1] for p in paths.values()})
        caught = captured_evaders(old_p, new_p, plain, new_e)
        caught += [e for e, path in paths.items() if new_evaders.caught_on_path(new_p, path)]
        caught.sort(key=lambda n: int(n[1:]))
        new_e.update({e: path[-1] for e, path in paths.items()})
        self._pursuers = new_p
        self._evaders = {e: new_e[e] for e in sorted(new_e, key=lambda n: int(n[1:])) if e not in caught}
        self._captured += caught
        self._step += 1
        if paths:
            self._follow_sprinters(new_e)
        self._judge_emergencies()
        if not self._done:
            self._judge(caught)
        self._maybe_announce()
        return StepResult(self._done, self._success, invalid, {"captured": caught, "reason": self._reason})

    def _follow_sprinters(self, cells: dict[str, Cell]) -> None:
        """An `evader` emergency's cells are where its evader is now (or was caught)."""
        where = {self._sprinters[e]: [cells[e]] for e in cells if e in self._sprinters}
        self._active = [(e, where.get(e.id, cs)) for e, cs in self._active]

    def _judge_emergencies(self) -> None:
        for emergency, cells in self._active:
            if EMERGENCY_KINDS[emergency.kind] != "deadly":
                continue
            lost = [n for n, cell in self._pursuers.items() if cell in cells]
            if lost:
                return self._finish(False, f"{lost[0]} was lost to the {emergency.kind}")

    def _judge(self, caught: list[str]) -> None:
        """Decide whether the episode ended this step, and how."""
        kind, p = self.instruction.kind, self.instruction.params
        guard_ok = True
        if kind == "guard":
            on_cell = list(self._pursuers[p["pursuer"]]) == list(p["cell"])
            if self._guard_reached and not on_cell:
                return self._finish(False, f"{p['pursuer']} left its guard cell")
            self._guard_reached |= on_cell
            guard_ok = on_cell
        if kind == "capture_first" and caught and p["evader"] not in self._captured:
            return self._finish(False, f"{caught[0]} was captured before {p['evader']}")
        if not self._evaders:
            if not guard_ok:
                return self._finish(False, f"{p['pursuer']} was not on its guard cell at the end")
            return self._finish(True, "all evaders captured")
        if self._step >= self._max_steps:
            self._finish(False, "step limit reached")

    def _finish(self, success: bool, reason: str) -> None:
        self._done, self._success, self._reason = True, success, reason

    # ---- metrics -------------------------------------------------------------------------------
    def episode_metrics(self) -> dict[str, Any]:
        self._require_episode()
        return {"env": self.name, "seed": self.seed, "kind": self.instruction.kind, "success": self._success,
                "done": self._done, "steps": self._step, "decisions": self._decisions,
                "invalid": self._invalid, "captured": len(self._captured), "reason": self._reason,
                **({"emergency": "+".join(e.kind for e, _ in self._active) or "none"}
                   if "emergency" in self.breakdown_keys else {})}
