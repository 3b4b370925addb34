"""Per-patient updating and sessions to target."""

from __future__ import annotations

import numpy as np
import pytest

from leukos.apheresis import PlanOptions, plan_leukapheresis, sample_params, sessions_to_target, update_patient
from leukos.errors import LeukosUserError

from .helpers import kb, make_case


def _setup():
    k = kb()
    plan = plan_leukapheresis(make_case(), PlanOptions(draws=50), k)
    prior = sample_params(k, diagnosis="AML", weight_kg=70, n=1500, seed=11)
    return k, plan, prior


@pytest.mark.parametrize("observed_post", [60.0, 200.0])
def test_update_moves_prediction_toward_observation(observed_post):
    k, plan, prior = _setup()
    up = update_patient(plan.settings, plan.patient, prior, observed_pre_10e9_per_l=250, observed_post_10e9_per_l=observed_post,
                        volume_processed_l=None, log_sd=k.value("apheresis.wbc_measurement_log_sd"), interval_h=24)
    before = abs(up.prior_post_wbc["median"] - observed_post)
    after = abs(up.posterior_post_wbc["median"] - observed_post)
    assert after < before
    # the patient's efficiency moves in the right direction, and so does the next session's prediction
    if observed_post < up.prior_post_wbc["median"]:
        assert up.e0_posterior["median"] > up.e0_prior["median"]
        assert up.next_session["post_wbc_10e9_per_l"]["median"] < up.next_session["prior_post_wbc_10e9_per_l"]["median"]
    else:
        assert up.e0_posterior["median"] < up.e0_prior["median"]
        assert up.next_session["post_wbc_10e9_per_l"]["median"] > up.next_session["prior_post_wbc_10e9_per_l"]["median"]
    assert up.effective_sample_size > 10


def test_update_rejects_bad_observations():
    k, plan, prior = _setup()
    with pytest.raises(LeukosUserError):
        update_patient(plan.settings, plan.patient, prior, observed_pre_10e9_per_l=250, observed_post_10e9_per_l=0,
                       volume_processed_l=None, log_sd=0.1, interval_h=24)
    with pytest.raises(LeukosUserError):
        update_patient(plan.settings, plan.patient, prior, observed_pre_10e9_per_l=250, observed_post_10e9_per_l=100,
                       volume_processed_l=500.0, log_sd=0.1, interval_h=24)


def test_sessions_to_target_is_a_distribution_and_monotone_in_target():
    k, plan, prior = _setup()
    p = prior.take(np.arange(300))
    lo = sessions_to_target(plan.settings, plan.patient, p, target_10e9_per_l=50, max_sessions=5, interval_h=24)
    hi = sessions_to_target(plan.settings, plan.patient, p, target_10e9_per_l=150, max_sessions=5, interval_h=24)
    # a higher target is reached at least as early, session by session
    assert all(b >= a for a, b in zip(lo["probability_by_session"], hi["probability_by_session"], strict=True))
    assert lo["probability_by_session"] == sorted(lo["probability_by_session"])
    already = sessions_to_target(plan.settings, plan.patient, p, target_10e9_per_l=300, max_sessions=5, interval_h=24)
    assert already["median"] == 0
