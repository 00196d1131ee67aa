"""Tasks typed by a user: parse ``--task`` text into a family's task, warn when it is out of distribution.

Used by the CLIs (``python -m metarl.adapt --task ...``). Two spellings are accepted:

- ``key=value[,key=value]``; a vector value joins its numbers with ``:`` (``goal=0.1:0.2``);
- JSON, an object of field -> value (``{"goal": [0.1, 0.2]}``).

Every problem (malformed text, unknown or missing field, non-finite number, a value the family cannot
represent such as direction 0.5) is a :class:`~metarl.envs.TaskError` with a one-line message that names
the problem and shows a valid example. A task outside the *training* distribution (velocity 2.5 for a
family trained on [0, 2]) is a legitimate experiment: it parses, and :func:`warn_if_out_of_distribution`
prints a one-line warning.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from typing import Any, TextIO

from .envs import Task, TaskError, TaskFamily, get_family


def _family(family_cls: type[TaskFamily] | str) -> type[TaskFamily]:
    if isinstance(family_cls, str):
        try:
            return get_family(family_cls)
        except KeyError as e:
            raise TaskError(str(e.args[0])) from None
    return family_cls


def task_text(task: Task) -> str:
    """The ``key=value`` spelling of ``task`` (3 significant digits), as ``--task`` reads it."""
    parts = []
    for f in dataclasses.fields(task):
        v = getattr(task, f.name)
        if isinstance(v, tuple):
            text = ":".join(f"{x:.3g}" for x in v)
        else:  # text fields (Meta-World's env_name, split) and integers as they are
            text = v if isinstance(v, str) else str(v) if isinstance(v, int) else f"{v:.3g}"
        parts.append(f"{f.name}={text}")
    return ",".join(parts)


def task_example(family_cls: type[TaskFamily] | str) -> str:
    """A valid ``key=value`` spelling of one of the family's meta-test tasks, for error messages."""
    return task_text(_family(family_cls).meta_test_tasks()[0])


def _number(text: str) -> float:
    return float(text)  # accepts inf and nan: the task's own check then names them


def _parse_pairs(text: str, fields: list[str], text_fields: frozenset[str] = frozenset()) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise TaskError("empty item between commas")
        key, sep, raw = part.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            hint = " (join the numbers of a vector with ':', as in goal=0.1:0.2)" if values else ""
            raise TaskError(f"{part!r} is not key=value{hint}")
        if key in values:
            raise TaskError(f"field {key!r} given twice")
        if key in text_fields:  # e.g. env_name=reach-v3
            values[key] = raw
            continue
        try:
            numbers = [_number(x) for x in raw.split(":")]
        except ValueError:
            raise TaskError(f"{key}={raw!r} is not a number (vectors join numbers with ':')") from None
        values[key] = numbers if len(numbers) > 1 else numbers[0]
    return values


def parse_task(family_cls: type[TaskFamily] | str, text: str) -> Task:
    """Parse ``text`` into a task of ``family_cls``.

    Args:
        family_cls: the family class (or its name / registered id).
        text: ``key=value[,key=value]`` with ``:`` between the numbers of a vector (``goal=0.1:0.2``),
            or a JSON object (``{"goal": [0.1, 0.2]}``).

    Returns:
        The family's task dataclass.

    Raises:
        TaskError: one line naming the problem and a valid example.
    """
    family = _family(family_cls)
    task_type = family.task_type
    fields = [f.name for f in dataclasses.fields(task_type)]
    where = f"--task {text!r} for {family.family_name}"
    try:
        stripped = text.strip()
        if not stripped:
            raise TaskError("empty task")
        if stripped.startswith(("{", "[")):
            try:
                values = json.loads(stripped)
            except json.JSONDecodeError as e:
                raise TaskError(f"malformed JSON ({e.msg} at character {e.pos})") from None
            if not isinstance(values, dict):
                raise TaskError("JSON task must be an object of field: value")
        else:
            text_fields = frozenset(f.name for f in dataclasses.fields(task_type) if f.type in (str, "str"))
            values = _parse_pairs(stripped, fields, text_fields)
        for key in values:
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=1, cutoff=0.5)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TaskError(f"unknown field {key!r}{hint}; fields are: {', '.join(fields)}")
        task = task_type.from_dict(values)
    except TaskError as e:
        msg = str(e).replace("\n", " ")
        raise TaskError(f"{where}: {msg}; example: --task {task_example(family)}") from None
    except (TypeError, ValueError) as e:  # a value of the wrong kind that the dataclass did not name
        msg = str(e).replace("\n", " ")
        raise TaskError(f"{where}: {msg}; example: --task {task_example(family)}") from None
    return task


def warn_if_out_of_distribution(
    family_cls: type[TaskFamily] | str, task: Task, file: TextIO | None = None, prog: str = "metarl"
) -> bool:
    """Print a one-line warning to stderr if ``task`` lies outside the family's training distribution.

    Such a task is allowed (it is a legitimate experiment), only flagged.

    Args:
        family_cls: the family class (or its name / registered id).
        task: a task of that family.
        file: where to print (default ``sys.stderr``).
        prog: the program name that starts the line.

    Returns:
        Whether the warning was printed.
    """
    family = _family(family_cls)
    if family.in_training_distribution(task):
        return False
    values = ", ".join(f"{k}={v}" for k, v in task.to_dict().items())
    print(
        f"{prog}: warning: task {values} lies outside the tasks {family.family_name} is trained on; "
        "allowed, but expect adaptation to be worse than on training-like tasks",
        file=file if file is not None else sys.stderr,
    )
    return True
