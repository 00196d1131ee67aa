"""``--task`` parsing and the out-of-distribution warning (metarl/tasks.py)."""

import io

import pytest

from metarl.envs import (
    DirectionTask,
    GoalTask,
    HalfCheetahDirEnv,
    HalfCheetahVelEnv,
    Navigation2DEnv,
    TaskError,
    VelocityTask,
)
from metarl.tasks import parse_task, warn_if_out_of_distribution


@pytest.mark.parametrize(
    "family, text, task",
    [
        (HalfCheetahVelEnv, "velocity=1.3", VelocityTask(1.3)),
        (HalfCheetahVelEnv, " velocity = 1.3 ", VelocityTask(1.3)),
        (HalfCheetahVelEnv, '{"velocity": 1.3}', VelocityTask(1.3)),
        (HalfCheetahDirEnv, "direction=-1", DirectionTask(-1)),
        (HalfCheetahDirEnv, '{"direction": 1}', DirectionTask(1)),
        (Navigation2DEnv, "goal=0.1:0.2", GoalTask((0.1, 0.2))),
        (Navigation2DEnv, '{"goal": [0.1, 0.2]}', GoalTask((0.1, 0.2))),
        ("metarl/Navigation2D-v0", "goal=-0.3:0.4", GoalTask((-0.3, 0.4))),
    ],
)
def test_valid_tasks_parse(family, text, task):
    parsed = parse_task(family, text)
    assert parsed == task and type(parsed) is type(task)


@pytest.mark.parametrize(
    "family, text, message",
    [
        (HalfCheetahVelEnv, "", "empty task"),
        (HalfCheetahVelEnv, "velocity", "'velocity' is not key=value"),
        (HalfCheetahVelEnv, "velocity=fast", "velocity='fast' is not a number"),
        (HalfCheetahVelEnv, "velocity=nan", "'velocity' must be finite, got nan"),
        (HalfCheetahVelEnv, "velocity=-inf", "'velocity' must be finite, got -inf"),
        (HalfCheetahVelEnv, '{"velocity": Infinity}', "'velocity' must be finite, got inf"),
        (HalfCheetahVelEnv, "velocty=1", "unknown field 'velocty' (did you mean 'velocity'?); fields are: velocity"),
        (HalfCheetahVelEnv, "velocity=1,mass=2", "unknown field 'mass'"),
        (HalfCheetahVelEnv, "velocity=1,velocity=2", "field 'velocity' given twice"),
        (HalfCheetahVelEnv, '{"velocity": 1', "malformed JSON"),
        (HalfCheetahVelEnv, "[1.0]", "JSON task must be an object"),
        (HalfCheetahVelEnv, '{"velocity": "1"}', "'velocity' must be a number, got '1'"),
        (HalfCheetahVelEnv, "{}", "missing task field 'velocity'"),
        (HalfCheetahDirEnv, "direction=0.5", "'direction' must be +1 or -1, got 0.5"),
        (HalfCheetahDirEnv, "direction=2", "'direction' must be +1 or -1"),
        (HalfCheetahDirEnv, '{"direction": true}', "'direction' must be a number"),
        (Navigation2DEnv, "goal=0.1,0.2", "join the numbers of a vector with ':'"),
        (Navigation2DEnv, "goal=0.1", "'goal' must be two numbers"),
        (Navigation2DEnv, "goal=0.1:0.2:0.3", "'goal' must be two numbers"),
        (Navigation2DEnv, "goal=0.1:nan", "'goal' must be finite"),
        ("Navigaton2D", "goal=0:0", "did you mean 'Navigation2D'?"),
    ],
)
def test_bad_tasks_are_one_line_errors_with_an_example(family, text, message):
    with pytest.raises(TaskError) as e:
        parse_task(family, text)
    msg = str(e.value)
    assert message in msg and "\n" not in msg, msg
    if family != "Navigaton2D":
        assert f"--task {text!r}" in msg and "example: --task " in msg
        example = msg.rsplit("example: --task ", 1)[1]
        parse_task(family, example)  # the suggested spelling is valid


def test_out_of_distribution_task_is_allowed_with_one_warning_line():
    task = parse_task(HalfCheetahVelEnv, "velocity=2.5")  # trained on [0, 2]: a legitimate experiment
    out = io.StringIO()
    assert warn_if_out_of_distribution(HalfCheetahVelEnv, task, file=out, prog="metarl.adapt")
    line = out.getvalue()
    assert line.startswith("metarl.adapt: warning: task velocity=2.5 lies outside") and line.count("\n") == 1
    assert "HalfCheetahVel" in line


@pytest.mark.parametrize(
    "family, text",
    [(HalfCheetahVelEnv, "velocity=2.0"), (Navigation2DEnv, "goal=0.5:-0.5"), (HalfCheetahDirEnv, "direction=-1")],
)
def test_in_distribution_tasks_print_nothing(family, text, capsys):
    assert not warn_if_out_of_distribution(family, parse_task(family, text))
    assert capsys.readouterr().err == ""


def test_warning_goes_to_stderr_by_default(capsys):
    assert warn_if_out_of_distribution(Navigation2DEnv, parse_task(Navigation2DEnv, "goal=0.9:0"))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "warning" in captured.err
