"""molops.descriptors: reference values, alerts, batch behaviour."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import ASPIRIN, CAFFEINE, CISPLATIN
from molops.descriptors import compute_descriptors, describe, penalized_logp, sa_score
from molops.errors import UnsupportedElementError
from molops.io import read_molecules


def test_aspirin_reference_values():
    d = compute_descriptors(ASPIRIN)
    assert d.molecular_weight_da == pytest.approx(180.159, abs=1e-3)
    assert d.clogp == pytest.approx(1.3101, abs=1e-4)
    assert d.tpsa_a2 == pytest.approx(63.60, abs=1e-2)
    assert (d.hba, d.hbd, d.rotatable_bonds, d.heavy_atoms, d.aromatic_rings) == (3, 1, 2, 13, 1)
    assert d.qed == pytest.approx(0.5501, abs=1e-4)
    assert d.sa_score == pytest.approx(1.580, abs=1e-3)
    assert d.passes_lipinski and d.lipinski_violations == 0
    assert d.brenk_alerts == "phenol_ester" and d.n_pains_alerts == 0


def test_penalized_logp_follows_the_jtvae_formula():
    # z-scores with ZINC-250k statistics: logP, -SA and -(largest ring - 6) for cyclononane.
    logp, sa, ring = 3.5109, 1.0, -3
    expected = (logp - 2.4570953396190123) / 1.434324401111988 + (-sa + 3.0525811293166134) / 0.8335207024513095 \
        + (ring + 0.0485696876403053) / 0.2860212110245455
    assert sa_score("C1CCCCCCCC1") == pytest.approx(sa, abs=1e-6)
    assert penalized_logp("C1CCCCCCCC1") == pytest.approx(expected, abs=1e-3)
    assert penalized_logp(ASPIRIN) == pytest.approx(1.1368, abs=1e-3)


def test_alerts_and_rule_of_five_violations():
    rhodanine = compute_descriptors("S=C1SC(=Cc2ccccc2)C(=O)N1")
    assert rhodanine.n_pains_alerts >= 1 and "ene_rhod" in rhodanine.pains_alerts
    fatty = compute_descriptors("C" * 39 + "C(=O)O")  # MW > 500 and cLogP > 5
    assert fatty.lipinski_violations == 2 and not fatty.passes_lipinski


def test_metal_complex_rejected():
    with pytest.raises(UnsupportedElementError, match="Pt"):
        compute_descriptors(CISPLATIN)


def test_describe_is_vectorised_and_keeps_input_columns(tmp_path):
    path = tmp_path / "mols.csv"
    pd.DataFrame({"name": ["aspirin", "junk", "caffeine", "cisplatin"], "smiles": [ASPIRIN, "CX", CAFFEINE, CISPLATIN]}).to_csv(path, index=False)
    frame = describe(read_molecules(path))
    assert frame["name"].tolist() == ["aspirin", "junk", "caffeine", "cisplatin"]
    assert frame["qed"].iloc[0] == pytest.approx(0.5501, abs=1e-4)
    assert frame["hbd"].iloc[2] == 0 and str(frame["hbd"].dtype) == "Int64"
    assert pd.isna(frame["qed"].iloc[1]) and "line 3" in frame["error"].iloc[1]
    assert "Pt" in frame["error"].iloc[3]
    assert frame["error"].iloc[0] is None and frame["error"].iloc[2] is None
    one = describe(CAFFEINE)
    assert one["smiles"].tolist() == [CAFFEINE] and one["tpsa_a2"].iloc[0] == pytest.approx(61.82, abs=1e-2)
