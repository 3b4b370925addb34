"""Per-patient learning (leukos.apheresis.patient) and sessions to target."""

from __future__ import annotations

import numpy as np
import pytest

from leukos.apheresis import (
    ObservedSession,
    PlanOptions,
    patient_prior,
    plan_leukapheresis,
    predict_next_session,
    sample_params,
    sessions_to_target,
    update_patient_params,
)
from leukos.apheresis.patient import rebound, simulation_study
from leukos.errors import LeukosUserError

from .helpers import kb, make_case


@pytest.mark.parametrize("observed_post", [60.0, 200.0])
def test_update_moves_the_next_prediction_toward_the_observation(observed_post):
    k = kb()
    prior = patient_prior(k, diagnosis="AML")
    pop = predict_next_session(prior, pre_wbc_10e9_per_l=250, blood_volumes=2.0)
    post = update_patient_params(prior, [ObservedSession(250, observed_post, 2.0)])
    own = predict_next_session(post, pre_wbc_10e9_per_l=250, blood_volumes=2.0)
    # the same session repeated: the patient's prediction lies between the population's and the observation
    assert abs(own.end_of_run["median"] - observed_post) < abs(pop.end_of_run["median"] - observed_post)
    assert (post.mean_log_k > prior.mean_log_k) == (observed_post < pop.end_of_run["median"])
    assert post.sd_log_k < prior.sd_persistent
    assert own.working and any("This patient after 1 session" in w for w in own.working)


def test_more_sessions_narrow_the_posterior_and_a_rise_is_a_valid_observation():
    prior = patient_prior(kb(), diagnosis="CML")
    one = update_patient_params(prior, [ObservedSession(400, 300, 2.0)])
    two = update_patient_params(prior, [ObservedSession(400, 300, 2.0), ObservedSession(350, 260, 2.0)])
    assert two.sd_log_k < one.sd_log_k
    rose = update_patient_params(prior, [ObservedSession(477, 533, 2.0)])
    assert rose.mean_log_k < prior.mean_log_k
    nxt = predict_next_session(rose, pre_wbc_10e9_per_l=500, blood_volumes=2.0)
    assert nxt.pct_fall["median"] < predict_next_session(prior, pre_wbc_10e9_per_l=500, blood_volumes=2.0).pct_fall["median"]


def test_learning_beats_the_population_in_a_known_truth_simulation():
    study = simulation_study(patient_prior(kb(), diagnosis=None), n_patients=600, seed=3)
    assert study["mae_after_update_pct_points"] < study["mae_population_pct_points"]
    assert 80 <= study["coverage_90_after_update_pct"] <= 97
    assert study["band_width_after_update"] < study["band_width_population"]


@pytest.mark.parametrize("session, field", [
    (ObservedSession(250, 0, 2.0), "post_wbc_10e9_per_l"),
    (ObservedSession(-1, 100, 2.0), "pre_wbc_10e9_per_l"),
    (ObservedSession(250, 100, -2.0), "blood_volumes"),
    (ObservedSession(250, 100, 9.0), "blood_volumes"),
])
def test_update_rejects_bad_observations(session, field):
    with pytest.raises(LeukosUserError) as ei:
        update_patient_params(patient_prior(kb(), diagnosis="AML"), [session])
    assert field in str(ei.value.details[0].field)


def test_rebound_returns_to_equilibrium_and_grows():
    pre, end = np.array([300.0]), np.array([150.0])
    # no time: the end-of-run count; long time, no growth: the pooled equilibrium
    assert rebound(pre, end, 0.0, np.array([1.0]), np.array([10.0]), np.array([1e12]))[0] == pytest.approx(150.0)
    assert rebound(pre, end, 1e4, np.array([1.0]), np.array([10.0]), np.array([1e12]))[0] == pytest.approx(225.0)
    assert rebound(pre, end, 24.0, np.array([1.0]), np.array([10.0]), np.array([24.0]))[0] > 225.0


def test_plan_reports_both_end_of_run_and_next_morning_and_uses_the_observed_session():
    k = kb()
    plan = plan_leukapheresis(make_case(), PlanOptions(draws=50, observed_pre_wbc_10e9_per_l=300,
                                                       observed_post_wbc_10e9_per_l=250, observed_volume_l=8.0), k)
    oc = plan.predicted["wbc_outcome_model"]
    assert oc["end_of_run_wbc_10e9_per_l"]["median"] < 250 < oc["next_morning_wbc_10e9_per_l"]["p95"] + 1
    up = plan.patient_update
    assert up["next_session_this_patient"]["pct_fall"]["median"] < up["next_session_population"]["pct_fall"]["median"]
    with pytest.raises(LeukosUserError):
        plan_leukapheresis(make_case(), PlanOptions(draws=50, observed_pre_wbc_10e9_per_l=30,
                                                    observed_post_wbc_10e9_per_l=400), k)


def test_sessions_to_target_is_a_distribution_and_monotone_in_target():
    k = kb()
    plan = plan_leukapheresis(make_case(), PlanOptions(draws=50), k)
    p = sample_params(k, diagnosis="AML", weight_kg=70, n=300, seed=11)
    lo = sessions_to_target(plan.settings, plan.patient, p, target_10e9_per_l=50, max_sessions=5, interval_h=24)
    hi = sessions_to_target(plan.settings, plan.patient, p, target_10e9_per_l=150, max_sessions=5, interval_h=24)
    # a higher target is reached at least as early, session by session
    assert all(b >= a for a, b in zip(lo["probability_by_session"], hi["probability_by_session"], strict=True))
    assert lo["probability_by_session"] == sorted(lo["probability_by_session"])
    already = sessions_to_target(plan.settings, plan.patient, p, target_10e9_per_l=300, max_sessions=5, interval_h=24)
    assert already["median"] == 0


def test_cml_plan_warns_that_its_fall_is_not_validated():
    case = make_case(findings={"known_diagnosis": "CML", "genetics": {"bcr_abl1": "positive"}}, labs={"wbc": 500})
    p = plan_leukapheresis(case, PlanOptions(draws=40), kb())
    assert any("Chekol 2012" in w for w in p.warnings) and "chekol2012" in p.citations
    aml = plan_leukapheresis(make_case(), PlanOptions(draws=40), kb())
    assert not any("Chekol 2012: 17" in w for w in aml.warnings)
