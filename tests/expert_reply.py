"""A reply function for the local OpenAI-compatible test server that answers like the expert teacher.

`teacher_server.py --reply_fn expert_reply:pursuit_expert` then behaves like an LLM endpoint that
knows the pursuit game, so the whole pipeline can run over real HTTP with the openai backend;
`expert_reply:doc_expert` answers Divide-or-Conquer's decomposition and solving prompts.
"""

import collections

from configs.doc_schema import DocExpertConfig
from configs.teacher_schema import TeacherConfig
from generation.doc.expert import DocExpertTeacher
from generation.doc.simulate import ExpertErrorModel
from generation.ld.envs.pursuit.env import PursuitEnv
from generation.ld.envs.registry import expert_for
from generation.teachers.base import TeacherRequest, prompt_hash
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


# Divide-or-Conquer: the n-th answer to one prompt is the expert's sample n. Like an LLM sampling at a
# temperature, k asks of one decomposition prompt get k different decompositions; unlike one, the replies
# are a fixed sequence per prompt, so a prompt answered more often than asked for shows up (in the
# server's answered-per-prompt counts and as a sample the in-process expert never drew). The draws are
# counted for the server process's life (a /reset does not restart them).
_DOC_TEACHER = DocExpertTeacher(TeacherConfig(), errors=ExpertErrorModel(**DocExpertConfig().model_dump()))
_DOC_DRAWS: collections.Counter[str] = collections.Counter()


def doc_expert(messages, model):
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    digest = prompt_hash(messages)
    sample, _DOC_DRAWS[digest] = _DOC_DRAWS[digest], _DOC_DRAWS[digest] + 1
    return _DOC_TEACHER.reply_for(TeacherRequest(messages, metadata={"sample": sample}))
