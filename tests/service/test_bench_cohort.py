"""The load benchmark's cohort of patients (benchmarks/service_peers/request.py) is what it claims.

The benchmark sends a different patient on every call so that nothing remembered from one call can
pass for speed on the next. That only holds if the patients really differ in everything that names
a patient or an event (ids, times, birth date) and in their values, and if they still ask the same
work of the service (the same cards), so that throughput compares like with like.
"""

from __future__ import annotations

import sys

import pytest

from leukos.service.app import create_app
from leukos.service.settings import ServiceSettings

from .conftest import REPO, Client

sys.path.insert(0, str(REPO))
from benchmarks.service_peers.request import PATIENT_ID, cohort, patient_view_request  # noqa: E402

SAMPLE = (0, 1, 2, 59, 60, 999, 4999, 19_999)


def _observations(body: dict) -> list[dict]:
    return [e["resource"] for e in body["prefetch"]["labs"]["entry"]]


def _names(body: dict) -> set[str]:
    """Every string in the request that names the patient, a resource or an event."""
    obs = _observations(body)
    pt = body["prefetch"]["patient"]
    return ({body["context"]["patientId"], pt["id"], pt["birthDate"]}
            | {o["id"] for o in obs} | {o["effectiveDateTime"] for o in obs} | {o["issued"] for o in obs}
            | {o["subject"]["reference"] for o in obs}
            | {e["fullUrl"] for e in body["prefetch"]["labs"]["entry"]})


def test_the_base_patient_is_the_single_patient_request() -> None:
    base = patient_view_request()
    assert base["context"]["patientId"] == PATIENT_ID
    assert patient_view_request(None) == base
    assert cohort(3) == [patient_view_request(n) for n in range(3)]


def test_no_two_patients_share_a_name_of_patient_resource_or_event() -> None:
    seen: dict[str, int] = {}
    for n in (*SAMPLE, *range(100, 400)):
        for name in _names(patient_view_request(n)) - {"female"}:
            assert seen.setdefault(name, n) == n, f"{name!r} in patients {seen[name]} and {n}"


def test_values_differ_between_patients_within_one_percent_of_the_base() -> None:
    base = [o["valueQuantity"]["value"] for o in _observations(patient_view_request())]
    rows = [[o["valueQuantity"]["value"] for o in _observations(patient_view_request(n))] for n in range(50)]
    for row in rows:
        for v, b in zip(row, base, strict=True):  # 1 %, then rounded to one decimal finer than given
            half_step = 0.5 * 10 ** -len(repr(float(v)).split(".")[1])
            assert abs(v - b) <= 0.01 * b + half_step + 1e-9
    assert len({tuple(r) for r in rows}) == len(rows)
    assert all(len({r[k] for r in rows}) >= 3 for k in range(len(base)))  # creatinine 1.2: 1.19-1.21


def test_the_same_codes_units_and_shape_for_every_patient() -> None:
    def shape(body: dict) -> list[tuple]:
        return [(o["code"]["coding"][0]["code"], o["valueQuantity"]["unit"], o.get("interpretation") is not None,
                 o["referenceRange"][0]["low"]["value"], o["referenceRange"][0]["high"]["value"])
                for o in _observations(body)]
    base = shape(patient_view_request())
    assert all(shape(patient_view_request(n)) == base for n in SAMPLE)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Client:
    state = tmp_path_factory.mktemp("cohort")
    return Client(create_app(ServiceSettings(auth_disabled=True, audit_log_path=state / "audit.jsonl",
                                             data_dir=state)))


def _cards(client: Client, body: dict) -> list[tuple[str, str]]:
    r = client.post("/cds-services/leukos-patient-view", json=body)
    assert r.status_code == 200, r.text
    return [(c["indicator"], c["summary"].split(":")[0]) for c in r.json()["cards"]]


@pytest.mark.parametrize("n", SAMPLE)
def test_every_patient_gets_the_cards_of_the_base_patient(client: Client, n: int) -> None:
    base = _cards(client, patient_view_request())
    assert len(base) == 5
    assert _cards(client, patient_view_request(n)) == base
