"""The garbage-collection policy (epay_tui.gc_policy): installed while the app runs,
a full collection at a quiet moment, the interpreter's own settings back afterwards.
Nothing here measures a pause; ``benchmarks/ui.py`` does."""

from __future__ import annotations

import gc

from epay_tui.gc_policy import GEN2_EVERY, QUIET_SECONDS, QuietCollector
from tests.payment_flows import SIZE
from tests.pilot_helpers import until


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_collects_only_when_quiet_and_when_something_was_promoted():
    saved = gc.get_threshold()
    clock = Clock()
    policy = QuietCollector(now=clock)
    policy.install()
    try:
        assert gc.get_threshold()[2] == GEN2_EVERY
        assert gc.get_freeze_count() > 0
        gc.collect(1)  # a young collection: something may wait in generation 2
        assert not policy.tick()  # no key yet, but not quiet for long enough either
        clock.t += QUIET_SECONDS
        policy.input()  # a key: not quiet
        clock.t += QUIET_SECONDS / 2
        assert not policy.tick()
        clock.t += QUIET_SECONDS / 2
        assert policy.tick() and policy.collections == 1
        assert not policy.tick()  # nothing new since: no second full collection
    finally:
        policy.uninstall()
    assert gc.get_threshold() == saved
    assert gc.get_freeze_count() == 0


async def test_the_app_installs_it_collects_when_quiet_and_gives_it_back(make_ui_app):
    saved = gc.get_threshold()
    clock = Clock()
    app = make_ui_app()
    app.gc_policy = QuietCollector(now=clock)
    async with app.run_test(size=SIZE) as pilot:
        policy = app.gc_policy
        await until(pilot, lambda: policy.installed, "policy installed")
        assert gc.get_threshold()[2] == GEN2_EVERY
        assert gc.get_freeze_count() > 0
        clock.t += 5 * QUIET_SECONDS
        await pilot.press("f24")  # a key: the app tells the policy
        assert policy.last_input == clock.t
        clock.t += QUIET_SECONDS
        gc.collect(1)
        await until(pilot, lambda: policy.collections >= 1, "a collection at a quiet moment")
    assert gc.get_threshold() == saved
    assert gc.get_freeze_count() == 0
