"""The 1 ms switch interval holds while any long scan runs, in any pool, and the interpreter's
own comes back once the last one ends, however their scans overlap."""

from __future__ import annotations

import sys

from gateway.detectors.pool import _SHORT_SWITCH, SWITCH_INTERVAL_S


def test_overlapping_scans_of_two_pools_restore_the_interpreters_interval() -> None:
    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL_S  # CPython's 5 ms
    first, second = _SHORT_SWITCH, _SHORT_SWITCH  # one per process, whichever pool holds it
    first.__enter__()  # pool A's scan starts
    second.__enter__()  # pool B's starts
    assert sys.getswitchinterval() == SWITCH_INTERVAL_S
    first.__exit__(None, None, None)  # A's ends first
    assert sys.getswitchinterval() == SWITCH_INTERVAL_S  # B's scan still runs
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before
