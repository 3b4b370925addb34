"""Every citation the apheresis data name resolves; every parameter has unit, status and source."""

from __future__ import annotations

from leukos.knowledge import load_knowledge


def _citation_lists(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "citations" or k.endswith("_citations"):
                yield from v
            else:
                yield from _citation_lists(v)


def test_table_citations_resolve():
    kb = load_knowledge()
    keys = list(_citation_lists(dict(kb.table("apheresis"))))
    assert len(keys) > 20
    missing = sorted({k for k in keys if k not in kb.citations})
    assert not missing


def test_outcome_annotations_cite_resolvable_sources():
    kb = load_knowledge()
    ann = kb.table("apheresis_outcomes")
    keys = list(_citation_lists(dict(ann)))
    assert len(keys) >= 25
    assert not sorted({k for k in keys if k not in kb.citations})
    # every annotated row says how it is used: scored, or shown with a reason
    for rid, r in ann["wbc_rows"].items():
        assert r["scored"] or r.get("reason"), rid


def test_apheresis_parameters_are_complete():
    kb = load_knowledge()
    params = [p for k, p in kb.parameters.items() if k.startswith(("apheresis.", "apheresis_calibration."))]
    assert len(params) > 40
    for p in params:
        assert p.unit and p.status in ("V", "P", "U") and p.citations, p.key
    assert all(p.status == "U" for p in params if p.key.startswith("apheresis_calibration."))


def test_first_device_profile_is_the_optia_wbcd_defaults():
    # apheresis.md §4.2 (Optia manual Table 4-13): AC 0.8 (0.8-1.2) mL/min/L TBV, inlet:AC 12 (6-15), 0.5-5 TBV
    kb = load_knowledge()
    devices = kb.table("apheresis")["devices"]
    name = next(iter(devices))
    d = devices[name]
    assert name == "spectra_optia_wbcd" == kb.value("apheresis.device_default")
    assert (d["ac_rate_ml_per_min_per_l_tbv"], d["ac_rate_range"]) == (0.8, [0.8, 1.2])
    assert (d["inlet_ac_ratio"], d["inlet_ac_ratio_range"]) == (12, [6, 15])
    assert d["tbv_processed_range"] == [0.5, 5.0]
