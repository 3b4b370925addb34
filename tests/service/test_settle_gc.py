"""`settle_gc` (called by `leukos serve` and the service benchmark): start-up objects frozen, serving thresholds."""

from __future__ import annotations

import gc

from leukos.service.app import GC_THRESHOLDS, settle_gc


def test_settle_gc_freezes_start_up_objects_and_sets_the_thresholds():
    before = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert GC_THRESHOLDS[0] > before[0] or before == GC_THRESHOLDS  # young collections made rarer
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
