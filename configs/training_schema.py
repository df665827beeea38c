"""Typed config of the student model and of its training run, plus the shipped size presets.

`StudentConfig` says which model to fine-tune (a size preset from `configs/presets/*.yaml`, or a
local Hugging Face checkpoint); `TrainingConfig` says how (processes, Accelerate/DeepSpeed files,
optimiser and schedule). ZeRO stage, offload and precision live in the shipped JSON/YAML files that
`resolve_deepspeed_config` / `resolve_accelerate_config` pick, never in code paths. Each thing is
said in one key: the stage in `zero_stage` (an override `deepspeed_config` must agree), the batch in
`global_batch_size` or `gradient_accumulation_steps` (both given: they must agree). The launcher
makes them concrete once (configs/resolved_training.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from configs.base import StrictModel

CONFIGS_DIR = Path(__file__).resolve().parent
PRESETS_DIR = CONFIGS_DIR / "presets"
ACCELERATE_DIR = CONFIGS_DIR / "accelerate"
DEEPSPEED_DIR = CONFIGS_DIR / "deepspeed"
DEFAULT_ZERO_STAGE = 2


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _shipped_names(folder: Path, suffix: str) -> list[str]:
    return sorted(p.stem for p in folder.glob(f"*{suffix}"))


class StudentPreset(StrictModel):
    """The shape of a Llama-style student. Vocabulary size comes from the locally trained tokenizer."""

    description: str = ""
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int | None = None  # None = num_attention_heads (plain multi-head attention)
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    learning_rate: float = Field(default=1e-3, gt=0, description="peak lr used when training.learning_rate is unset")

    @model_validator(mode="after")
    def _heads_divide(self) -> "StudentPreset":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                             f"num_attention_heads {self.num_attention_heads}")
        kv = self.num_key_value_heads
        if kv is not None and (kv <= 0 or self.num_attention_heads % kv):
            raise ValueError(f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                             f"num_key_value_heads {kv}")
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads


def load_preset(name: str) -> StudentPreset:
    """The preset `configs/presets/<name>.yaml`, validated."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown student preset {name!r}; shipped presets: {', '.join(available_presets())}")
    raw = yaml.safe_load(path.read_text()) or {}
    return StudentPreset.model_validate(raw)


class StudentConfig(StrictModel):
    """Which student to train: exactly one of `preset` (built from scratch) or `path` (local HF checkpoint).

    With neither given the `tiny` preset is used, so a bare `student:` section still means something.
    """

    preset: str | None = None
    path: str | None = None
    vocab_size: int = Field(default=2048, ge=64, description="size of the locally trained tokenizer")
    max_seq_len: int = Field(default=512, ge=16)
    spell_call_names: bool = Field(
        default=False, description="tokenize the name in a call (`move_gas(`) and a word in parentheses "
        "(`(gas)`) letter by letter, so the student can copy a function name it never saw in training: "
        "turn on where the teacher writes functions at run time (configs/pursuit_emergencies.yaml). Off "
        "by default: on the plain pursuit quickstart it cost guard-cell copying (LD 0.98 -> 0.725). "
        "training/student_builder.py says why it helps")

    @model_validator(mode="before")
    @classmethod
    def _default_preset(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and raw.get("preset") is None and raw.get("path") is None:
            raw = {**raw, "preset": "tiny"}
        return raw

    @model_validator(mode="after")
    def _exactly_one_source(self) -> "StudentConfig":
        if self.preset is not None and self.path is not None:
            raise ValueError(f"student: give exactly one of preset ({self.preset!r}) or path ({self.path!r}), not both")
        if self.preset is not None and self.preset not in available_presets():
            raise ValueError(f"student.preset {self.preset!r} is not a shipped preset; "
                             f"choose one of {', '.join(available_presets())}")
        return self


class LoraSettings(StrictModel):
    """Low-rank adapters through `peft`: only the adapters train; the export merges them into the weights."""

    r: int = Field(default=16, ge=1)
    alpha: float = Field(default=32.0, gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainingConfig(StrictModel):
    """How the student is fine-tuned. `accelerate_config` / `deepspeed_config` take a shipped name or a path."""

    num_processes: int = Field(default=1, ge=1, description="processes in total, over all machines")
    num_machines: int = Field(default=1, ge=1)
    machine_rank: int = Field(default=0, ge=0)
    main_process_ip: str | None = None
    main_process_port: int | None = Field(default=None, ge=1, le=65535, description="None = a free port")
    accelerate_config: str = Field(default="auto", description="auto (cpu or gpu), a shipped name, or a path")
    zero_stage: int = Field(default=DEFAULT_ZERO_STAGE, ge=0, le=3, description="the ZeRO stage; picks "
                            "configs/deepspeed/zero<N>.json unless deepspeed_config names another file")
    deepspeed_config: str | None = Field(
        default=None, description="optional DeepSpeed file instead of zero<N>.json (offload, own settings): a "
        "shipped name (zero3_offload) or a path; its zero_optimization.stage must equal zero_stage")
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1, description="optimizer steps; overrides epochs")
    learning_rate: float | None = Field(default=None, gt=0, description="None = the preset's, or 2e-5 for a path")
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="final lr as a fraction of the peak")
    per_device_batch_size: int = Field(default=16, ge=1, description="rows per micro-batch per process")
    gradient_accumulation_steps: int | None = Field(
        default=None, ge=1, description="micro-batches per optimizer step on each process; None = derived "
        "from global_batch_size, or 1")
    global_batch_size: int | None = Field(
        default=None, ge=1, description="rows per optimizer step over all processes; derives "
        "gradient_accumulation_steps (it must divide exactly); keeps the batch when the process count changes")
    max_grad_norm: float = Field(default=1.0, gt=0)
    gradient_checkpointing: bool = False
    packing: bool = Field(default=False, description="pack several examples per row of max_seq_len tokens "
                          "(positions restart per example, attention never crosses examples)")
    lora: LoraSettings | None = None
    seed: int = 0
    log_every: int = Field(default=10, ge=1)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    save_every: int | None = Field(default=200, ge=1, description="optimizer steps between checkpoints; None = never")
    keep_last: int = Field(default=2, ge=1, description="checkpoints kept; older ones are deleted")
    checkpoint_dir: str | None = Field(default=None, description="None = <run_dir>/checkpoints/<job>")
    resume: str = Field(default="auto", description="auto (latest checkpoint in checkpoint_dir, if any), never, "
                        "or the path of one checkpoint (a step-N directory)")
    eval_fraction: float = Field(default=0.0, ge=0, lt=1, description="share of examples held out for eval loss")
    eval_every: int | None = Field(default=None, ge=1, description="optimizer steps between evals (and at the end)")
    peak_tflops: float | None = Field(default=None, gt=0, description="per-device peak for MFU; None = measured")

    @model_validator(mode="before")
    @classmethod
    def _saved_before_one_stage_key(cls, raw: Any) -> Any:
        # run directories saved before zero_stage became the one key for the stage hold `zero_stage: null`
        if isinstance(raw, dict) and "zero_stage" in raw and raw["zero_stage"] is None:
            raise ValueError("training.zero_stage is null: this config was saved before zero_stage became the one "
                             "key for the ZeRO stage; set training.zero_stage to the stage of its "
                             f"deepspeed_config ({raw.get('deepspeed_config')!r}), e.g. training.zero_stage=2")
        return raw

    @model_validator(mode="after")
    def _consistent(self) -> "TrainingConfig":
        if self.num_processes % self.num_machines:
            raise ValueError(f"training.num_processes ({self.num_processes}) must be a multiple of "
                             f"training.num_machines ({self.num_machines})")
        if self.machine_rank >= self.num_machines:
            raise ValueError(f"training.machine_rank {self.machine_rank} must be < num_machines {self.num_machines}")
        if self.num_machines > 1 and not self.main_process_ip:
            raise ValueError("training.main_process_ip is required when num_machines > 1")
        # Fails at load, not after the launch, when the batch cannot divide or is said twice differently.
        # (The override DeepSpeed file's stage is checked where the file is read: resolve_training.)
        accumulation_steps(self, self.num_processes)
        return self


def accumulation_steps(cfg: TrainingConfig, world_size: int) -> int:
    """Micro-batches per optimizer step on each process, for `world_size` processes.

    With `global_batch_size` set, it is derived (global = per_device x accumulation x processes) and
    must divide exactly; a gradient_accumulation_steps given as well must agree. Neither: 1.
    """
    if cfg.global_batch_size is None:
        return cfg.gradient_accumulation_steps or 1
    per_step = cfg.per_device_batch_size * world_size
    if cfg.global_batch_size % per_step:
        raise ValueError(f"training.global_batch_size={cfg.global_batch_size} is not divisible by "
                         f"per_device_batch_size ({cfg.per_device_batch_size}) x processes ({world_size}) "
                         f"= {per_step}; pick sizes whose product divides it")
    derived = cfg.global_batch_size // per_step
    if cfg.gradient_accumulation_steps is not None and cfg.gradient_accumulation_steps != derived:
        raise ValueError(f"training.gradient_accumulation_steps={cfg.gradient_accumulation_steps} conflicts with "
                         f"training.global_batch_size={cfg.global_batch_size}, which derives "
                         f"{cfg.global_batch_size} / ({cfg.per_device_batch_size} x {world_size} processes) "
                         f"= {derived}; set only one of the two")
    return derived


PRETRAINED_LEARNING_RATE = 2e-5  # fine-tuning an existing checkpoint (student.path) wants a gentle lr


def effective_learning_rate(training: TrainingConfig, student: StudentConfig) -> float:
    """training.learning_rate if set, else the preset's recommended peak lr (or 2e-5 for a local checkpoint)."""
    if training.learning_rate is not None:
        return training.learning_rate
    if student.preset is not None:
        return load_preset(student.preset).learning_rate
    return PRETRAINED_LEARNING_RATE


def _resolve_file(value: str, folder: Path, suffix: str, what: str) -> Path:
    """A shipped name (`zero2`) or a path to a file; a clear error when it is neither."""
    shipped = folder / f"{value}{suffix}"
    if "/" not in value and shipped.is_file():
        return shipped
    path = Path(value).expanduser()
    if path.is_file():
        return path.resolve()
    raise ValueError(f"{what} {value!r} is neither a shipped name ({', '.join(_shipped_names(folder, suffix))}) "
                     f"nor an existing file")


def resolve_deepspeed_config(cfg: TrainingConfig) -> Path:
    """The DeepSpeed file this run reads: training.deepspeed_config if given, else `zero<zero_stage>.json`."""
    return _resolve_file(cfg.deepspeed_config or f"zero{cfg.zero_stage}", DEEPSPEED_DIR, ".json",
                         "training.deepspeed_config")


def resolve_accelerate_config(cfg: TrainingConfig, cuda_available: bool) -> Path:
    """The Accelerate YAML this run uses; `auto` = multinode (GPU nodes), gpu, or cpu (any node count:
    the launch flags carry the topology, and a CPU run needs `use_cpu`)."""
    name = cfg.accelerate_config
    if name == "auto":
        name = ("multinode" if cfg.num_machines > 1 else "gpu") if cuda_available else "cpu"
    return _resolve_file(name, ACCELERATE_DIR, ".yaml", "training.accelerate_config")
