"""Config of the teacher-demonstration job: how work is cut, spread, validated and shown.

The provider's limits (RPM/TPM), prices and the response cache belong to the teacher service
(`configs/teacher_schema.py`), which every method shares; this section says how the LD Ray job uses it.
"""

from __future__ import annotations

from pydantic import Field

from configs.base import StrictModel


class GenerationConfig(StrictModel):
    """Teacher demonstrations on the training seeds, produced by a pool of Ray actors.

    Throughput: requests in flight = live episodes of a unit (`episodes_per_unit`, played in lockstep)
    x actors, capped per actor by `teacher.concurrency` and cluster-wide by `teacher.limits`.
    """

    train_episodes: int = Field(240, ge=1)
    num_actors: int = Field(2, ge=1)
    actor_num_cpus: float = Field(1.0, gt=0.0, description="CPUs Ray reserves per actor (I/O-bound: < 1 packs more)")
    episodes_per_unit: int = Field(20, ge=1, description="episodes one actor plays per unit (one shard)")
    top_k: int = Field(3, ge=1, le=20, description="functions retrieved per stage")
    only_successful: bool = Field(True, description="train only on episodes the teacher won")
    decisions_per_episode: int | None = Field(None, ge=1, description="evenly spaced steps of each episode "
                                              "kept as training records (None: all)")
    max_reasks: int = Field(2, ge=0, le=20, description="re-asks of a reply that fails parsing or was cut off; "
                                                        "then it is recorded as a rejection")
    unit_retries: int = Field(2, ge=0, description="re-runs of a unit whose actor died")
    progress: bool = Field(True, description="live progress display on the driver's terminal")
    log_every_s: float = Field(5.0, gt=0.0, description="seconds between live metrics sent to W&B")
