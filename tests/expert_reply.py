"""A reply function for the local OpenAI-compatible test server that answers like the expert teacher.

`teacher_server.py --reply_fn expert_reply:pursuit_expert` then behaves like an LLM endpoint that
knows the pursuit game, so the whole pipeline can run over real HTTP with the openai backend.
"""

from configs.teacher_schema import TeacherConfig
from generation.ld.envs.pursuit.env import PursuitEnv
from generation.ld.envs.registry import expert_for
from generation.teachers.expert import ExpertTeacher

_TEACHER = ExpertTeacher(TeacherConfig(), env=PursuitEnv(), expert=expert_for("pursuit"))


def pursuit_expert(messages, model):
    return _TEACHER.reply_text([{"role": m["role"], "content": m["content"]} for m in messages])


def ltr_tutor(messages, model):
    """Answers Learn-to-Reason feedback prompts like the built-in expert (`generation/ltr/tutor.py`):
    deterministic per prompt, the same text the offline expert backend replies."""
    from generation.ltr import tutor

    teacher = ExpertTeacher(TeacherConfig(), env=None, expert=tutor)
    return teacher.reply_text([{"role": m["role"], "content": m["content"]} for m in messages])
