"""A rerun must not fine-tune students built with other `student` settings under the new config's name."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from configs.training_schema import StudentConfig
from ray_jobs.stages import StageError
from launch.ld import check_student_settings, record_student_settings


def test_changed_student_settings_are_refused_and_named(tmp_path):
    init = tmp_path / "students" / "init"
    init.mkdir(parents=True)
    record_student_settings(init, StudentConfig(preset="tiny"))
    check_student_settings(init, StudentConfig(preset="tiny"))  # same settings: reused
    with pytest.raises(StageError) as err:
        check_student_settings(init, StudentConfig(preset="nano", spell_call_names=True))
    message = str(err.value)
    assert "student.preset: built with 'tiny', config asks for 'nano'" in message
    assert "student.spell_call_names: built with False, config asks for True" in message
    assert "vocab_size" not in message and str(init.parent) in message


def test_runs_without_recorded_settings_are_not_checked(tmp_path):
    check_student_settings(tmp_path, StudentConfig(preset="nano"))  # older run directory: nothing to compare
