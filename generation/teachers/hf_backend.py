"""A local Hugging Face model as the teacher: concurrent requests are gathered into batched `generate` calls.

`teacher.model` is a local checkpoint directory (no hub downloads). With `hf_engine=auto` the model runs
on vLLM when vLLM is importable and a GPU is present, else on transformers. Each request still gets its
own reply with its own token counts and finish reason ("length" when it stopped at max_tokens).
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from pathlib import Path

from configs.teacher_schema import TeacherConfig
from generation.teachers.base import TeacherBackend, TeacherError, TeacherReply, TeacherRequest, cost_usd

Generation = tuple[str, str, int, int]  # text, finish_reason, input tokens, output tokens


def _plain_prompt(messages: list[dict[str, str]]) -> str:
    """For a tokenizer without a chat template: one `role: content` line per message, then the cue."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


class TransformersEngine:
    def __init__(self, path: Path, device: str | None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(str(path)).to(self.device).eval()

    def _prompt(self, messages: list[dict[str, str]]) -> str:
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return _plain_prompt(messages)

    def generate(self, chats: list[list[dict[str, str]]], temperature: float, max_tokens: int) -> list[Generation]:
        import torch

        tok = self.tokenizer
        enc = tok([self._prompt(c) for c in chats], return_tensors="pt", padding=True, padding_side="left",
                  add_special_tokens=False).to(self.device)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max_tokens, pad_token_id=tok.pad_token_id,
                                      eos_token_id=tok.eos_token_id, **sampling)
        new = out[:, enc["input_ids"].shape[1]:]
        results = []
        for row, mask in zip(new.tolist(), enc["attention_mask"].tolist()):
            ended = tok.eos_token_id in row
            used = row[:row.index(tok.eos_token_id) + 1] if ended else [t for t in row if t != tok.pad_token_id]
            finish = "stop" if ended or len(used) < max_tokens else "length"
            results.append((tok.decode(used, skip_special_tokens=True), finish, sum(mask), len(used)))
        return results


class VLLMEngine:
    def __init__(self, path: Path):
        from vllm import LLM

        self.llm = LLM(model=str(path))

    def generate(self, chats: list[list[dict[str, str]]], temperature: float, max_tokens: int) -> list[Generation]:
        from vllm import SamplingParams

        outputs = self.llm.chat(chats, SamplingParams(temperature=temperature, max_tokens=max_tokens), use_tqdm=False)
        return [(o.outputs[0].text, o.outputs[0].finish_reason or "stop", len(o.prompt_token_ids),
                 len(o.outputs[0].token_ids)) for o in outputs]


def pick_engine(cfg: TeacherConfig) -> str:
    if cfg.hf_engine != "auto":
        return cfg.hf_engine
    if importlib.util.find_spec("vllm") is None:
        return "transformers"
    import torch

    return "vllm" if torch.cuda.is_available() else "transformers"


class HFTeacher(TeacherBackend):
    """Requests that arrive together (one `complete_many`) are answered by batches of `hf_batch_size`."""

    def __init__(self, cfg: TeacherConfig, **_: object) -> None:
        path = Path(cfg.model).expanduser()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"teacher.backend=hf: teacher.model must be a local checkpoint directory "
                                    f"with a config.json; {path} is not one")
        self.cfg = cfg
        self.engine_name = pick_engine(cfg)
        self.engine = VLLMEngine(path) if self.engine_name == "vllm" else TransformersEngine(path, cfg.hf_device)
        self._queue: list[tuple[TeacherRequest, asyncio.Future]] = []
        self._drainer: asyncio.Task | None = None
        self.batches = 0

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # every request of this tick joins the queue first
        while self._queue:
            head = self._queue[0][0]
            params = self._params(head)
            batch = [item for item in self._queue if self._params(item[0]) == params][:self.cfg.hf_batch_size]
            for item in batch:
                self._queue.remove(item)
            await self._run_batch(batch, *params)

    def _params(self, request: TeacherRequest) -> tuple[float, int]:
        temperature = self.cfg.temperature if request.temperature is None else request.temperature
        return temperature, request.max_tokens or self.cfg.max_tokens

    async def _run_batch(self, batch, temperature: float, max_tokens: int) -> None:
        started = time.monotonic()
        self.batches += 1
        try:
            results = await asyncio.to_thread(self.engine.generate, [r.messages for r, _ in batch], temperature,
                                              max_tokens)
        except Exception as exc:  # e.g. out of memory: every request of the batch fails with the reason
            for request, future in batch:
                if not future.done():
                    future.set_exception(TeacherError("server_error", f"local generate failed: {exc!r}",
                                                      request_id=request.request_id))
            return
        elapsed = time.monotonic() - started
        for (request, future), (text, finish, n_in, n_out) in zip(batch, results):
            if not future.done():
                future.set_result(TeacherReply(request_id=request.request_id, text=text, finish_reason=finish,
                                               input_tokens=n_in, output_tokens=n_out, model=self.cfg.model,
                                               latency_s=elapsed, cost_usd=cost_usd(n_in, n_out, self.cfg)))
