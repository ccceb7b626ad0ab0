"""APGD on objectives whose maximiser is known: the budget holds, the best value never drops, the
schedule is the paper's, and a batch of problems is solved as each alone."""

from __future__ import annotations

import torch

from spurbench.discovery.apgd import apgd, checkpoints, project


def test_checkpoints_follow_the_paper() -> None:
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (then > 1)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(200) == [44, 82, 114, 140, 160, 174, 186, 198]


def test_projection_is_onto_ball_and_box() -> None:
    center = torch.full((2, 3, 4, 4), 0.5)
    x = center + torch.randn(2, 3, 4, 4) * 10
    p = project(x, center, eps=0.7)
    assert ((p - center).flatten(1).norm(dim=1) <= 0.7 + 1e-6).all() and p.min() >= 0 and p.max() <= 1
    inside = center + 0.01
    assert torch.equal(project(inside, center, eps=1.0), inside)  # feasible points stay put


def test_concave_objective_reaches_the_constrained_optimum() -> None:
    torch.manual_seed(0)
    center = torch.full((3, 1, 8, 8), 0.5)
    target = torch.rand(3, 1, 8, 8) * 3 - 1  # mostly outside the box and the ball
    objective = lambda x: -((x - target) ** 2).flatten(1).sum(1)  # noqa: E731
    eps = 1.5
    start = project(center + torch.randn_like(center) * 0.1, center, eps)
    result = apgd(objective, start, center, eps, steps=100)
    assert ((result.best - center).flatten(1).norm(dim=1) <= eps + 1e-5).all()
    assert result.best.min() >= 0 and result.best.max() <= 1
    assert (result.history[1:] >= result.history[:-1]).all()  # the best value never decreases
    assert torch.allclose(result.best_value, objective(result.best))
    # The optimum of a strictly concave objective on a convex set: projected gradient fixed point;
    # a long projected-gradient run gives it to compare with.
    x = start.clone()
    for _ in range(3000):
        x = project(x + 0.01 * (-2 * (x - target)), center, eps)
    assert (result.best_value >= objective(x) - 1e-3 * objective(x).abs()).all()
    assert result.best_value.gt(objective(start)).all()


def test_a_batch_is_solved_as_each_problem_alone() -> None:
    torch.manual_seed(1)
    weights = torch.randn(3, 1, 6, 6)
    objective = lambda x: (torch.sin(3 * x) * weights[: len(x)]).flatten(1).sum(1)  # noqa: E731
    center = torch.full((3, 1, 6, 6), 0.5)
    start = project(center + torch.randn_like(center) * 0.2, center, 1.0)
    together = apgd(objective, start, center, 1.0, steps=40)
    for i in range(3):
        alone = apgd(
            lambda x, i=i: (torch.sin(3 * x) * weights[i : i + 1]).flatten(1).sum(1), start[i : i + 1], center[i : i + 1], 1.0, steps=40
        )
        torch.testing.assert_close(alone.best, together.best[i : i + 1])
