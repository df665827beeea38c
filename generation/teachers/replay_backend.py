"""A teacher that replays recorded replies: reproduce a dataset, or test without any server.

The file is JSONL, one reply per line, keyed by the prompt hash of the chat (`base.prompt_hash`):

    {"prompt_hash": "<sha256>", "reply": "...", "finish_reason": "stop", "input_tokens": 12, "output_tokens": 3,
     "model": "gpt-4o-mini"}

`messages` may stand in for `prompt_hash`; the token and model fields are optional. A cache file turns
into one with `python -m generation.storage.cache export CACHE OUT.jsonl`. A prompt with no recorded reply is a
`not_found` TeacherError naming the hash, never a made-up answer. Replays cost nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from configs.teacher_schema import TeacherConfig
from generation.teachers.base import TeacherBackend, TeacherError, TeacherReply, TeacherRequest, prompt_hash


def load_recorded(path: str | Path) -> dict[str, dict]:
    """prompt hash -> recorded entry; the first line for a hash wins, as in the cache."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"teacher.replay_path {path} does not exist")
    out: dict[str, dict] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{line_no}: not JSON ({exc.msg})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("reply"), str) or \
                not ({"prompt_hash", "messages"} & set(entry)):
            raise ValueError(f"{path}:{line_no}: each line needs a string 'reply' and 'prompt_hash' or 'messages'")
        key = entry.get("prompt_hash") or prompt_hash(entry["messages"])
        out.setdefault(key, entry)
    return out


class ReplayTeacher(TeacherBackend):
    def __init__(self, cfg: TeacherConfig, **_: object) -> None:
        self.cfg = cfg
        self.path = cfg.replay_path
        self.recorded = load_recorded(cfg.replay_path)

    async def complete(self, request: TeacherRequest) -> TeacherReply:
        digest = request.prompt_hash
        entry = self.recorded.get(digest)
        if entry is None:
            raise TeacherError("not_found", f"no recorded reply for prompt hash {digest} in {self.path}",
                               request_id=request.request_id)
        text = entry["reply"]
        return TeacherReply(request_id=request.request_id, text=text,
                            finish_reason=entry.get("finish_reason", "stop"),
                            input_tokens=int(entry.get("input_tokens", 0)),
                            output_tokens=int(entry.get("output_tokens", 0)),
                            model=entry.get("model", self.cfg.model), latency_s=0.0, cost_usd=0.0)

    def __len__(self) -> int:
        return len(self.recorded)
