"""The offline expert teacher of Divide-or-Conquer: decomposes and solves from the prompt text alone.

It reads its prompts back with the prompt module's readers, reads the question with the domain's
parser, and replies in the format an LLM is asked for; its replies then go through the same parsers
as any LLM's. Its mistakes are simulated (generation/doc/simulate.py): their random stream is
seeded by the prompt and `request.metadata["sample"]`, so samples of one prompt differ and a rerun
gives the same replies.

    build_teacher(cfg.teacher, expert_class=DocExpertTeacher, errors=ExpertErrorModel(...))
"""

from __future__ import annotations

from generation.doc.domains import domain_of_question
from generation.doc.simulate import ExpertErrorModel, expert_decomposition, seeded_rng, simulate_solve
from generation.doc import prompts as doc
from generation.prompts.calls import ParseError
from generation.teachers.base import TeacherError, TeacherRequest
from generation.teachers.expert import ExpertTeacher


class DocExpertTeacher(ExpertTeacher):
    def __init__(self, cfg, errors: ExpertErrorModel | None = None, **_context) -> None:
        super().__init__(cfg, env=None, expert=None)
        self.errors = errors or ExpertErrorModel()

    def reply_for(self, request: TeacherRequest) -> str:
        prompt = request.messages[-1]["content"]
        sample = request.metadata.get("sample", 0)
        try:
            if prompt.startswith(doc.DECOMPOSE_TASK):
                question, max_sub_questions = doc.read_decomposition_prompt(prompt)
                domain = domain_of_question(question)
                read = domain.read(question)
                keys, _ = expert_decomposition(read, max_sub_questions, seeded_rng("decompose", prompt, sample),
                                               self.errors)
                return doc.render_decomposition(domain.render_sub_questions(keys, read))
            if prompt.startswith(doc.SOLVE_TASK):
                question, sub_questions = doc.read_solving_prompt(prompt)
                domain = domain_of_question(question)
                outcome = simulate_solve(domain, domain.read(question), sub_questions,
                                         seeded_rng("solve", prompt, sample), self.errors, doc.FINAL_MARKER)
                return outcome.text
        except (ParseError, ValueError) as exc:
            raise TeacherError("bad_request", f"Divide-or-Conquer expert cannot read the prompt: {exc}") from None
        return self.reply_text(request.messages)
