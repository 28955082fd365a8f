"""The optimizers' progress callback (optim.tracking.reporting_progress), as the apps pass it on."""

from __future__ import annotations

import pytest

from hardprompt import distill
from hardprompt.optim.registry import METHODS, build_config


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_reports_each_step_and_stops_when_the_callback_interrupts(tiny_clip, method):
    seen = []
    config = build_config(method, prompt_len=3, steps=4, progress=False)
    result = distill("a red fox in the snow", model=tiny_clip, config=config, on_progress=seen.append)
    assert [p.step for p in seen] == list(range(1, result.steps + 1)) and result.steps == 4
    last = seen[-1]
    assert last.steps == 4 and list(last.history) == result.history
    assert all(p.best_score == max(p.history) for p in seen)
    assert all(isinstance(p.best_prompt, str) and p.best_prompt for p in seen)
    assert [p.seconds for p in seen] == sorted(p.seconds for p in seen)

    def stop_at_second_step(progress):
        if progress.step == 2:
            raise KeyboardInterrupt

    stopped = distill("a red fox in the snow", model=tiny_clip, config=config, on_progress=stop_at_second_step)
    assert stopped.interrupted and stopped.steps == 2 and stopped.prompt


def test_no_callback_outside_the_run(tiny_clip):
    calls = []
    config = build_config("pez", prompt_len=3, steps=2, progress=False)
    distill("a castle", model=tiny_clip, config=config, on_progress=calls.append)
    distill("a castle", model=tiny_clip, config=config)
    assert len(calls) == 2
