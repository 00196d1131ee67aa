import pytest
import torch

from metarl import reptile


def params(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((2, 3), value), "b": torch.full((3,), value)}


def test_eps_one_with_one_task_yields_the_adapted_weights():
    new, stats = reptile.reptile_step(params(1.0), [params(3.0)], eps=1.0)
    assert torch.equal(new["w"], torch.full((2, 3), 3.0))
    assert stats.step_size == 1.0


def test_eps_zero_leaves_the_meta_parameters():
    theta = params(1.0)
    new, stats = reptile.reptile_step(theta, [params(3.0), params(-7.0)], eps=0.0)
    assert all(torch.equal(new[k], theta[k]) for k in theta)
    assert stats.update_norm == 0.0


def test_two_tasks_with_eps_one_give_the_midpoint():
    new, _ = reptile.reptile_step(params(0.0), [params(2.0), params(4.0)], eps=1.0)
    assert torch.allclose(new["b"], torch.full((3,), 3.0))


def test_partial_step_and_update_norm():
    new, stats = reptile.reptile_step(params(0.0), [params(2.0)], eps=0.25)
    assert torch.allclose(new["w"], torch.full((2, 3), 0.5))
    assert stats.adapted_distance == pytest.approx(2.0 * (9**0.5))  # 9 entries of 2.0
    assert stats.update_norm == pytest.approx(0.25 * stats.adapted_distance)


def test_the_step_leaves_its_inputs_alone_and_returns_independent_tensors():
    old, adapted = params(1.0), [params(3.0)]
    new, _ = reptile.reptile_step(old, adapted, eps=0.5)
    assert torch.equal(old["w"], torch.full((2, 3), 1.0)) and torch.equal(adapted[0]["w"], torch.full((2, 3), 3.0))
    new["w"].add_(5.0)  # no storage shared with the inputs
    assert torch.equal(old["w"], torch.full((2, 3), 1.0)) and torch.equal(adapted[0]["w"], torch.full((2, 3), 3.0))


def test_mismatched_parameter_sets_are_refused():
    with pytest.raises(ValueError):
        reptile.mean([params(1.0), {"w": torch.zeros(2, 3)}])


def test_linear_schedule_anneals_from_start_to_final():
    assert reptile.linear_schedule(1.0, 0.0, 0, 100) == 1.0
    assert reptile.linear_schedule(1.0, 0.0, 50, 100) == pytest.approx(0.5)
    assert reptile.linear_schedule(1.0, 0.0, 100, 100) == 0.0
    assert reptile.linear_schedule(1.0, 0.2, 150, 100) == pytest.approx(0.2)
