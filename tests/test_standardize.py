"""molops.standardize: parent molecules, canonical identifiers, batch behaviour."""

from __future__ import annotations

import pytest

from conftest import ASPIRIN, CISPLATIN, GLYCINE_ZWITTERION
from molops.errors import ParseError, UnsupportedElementError
from molops.standardize import StandardizeOptions, canonical_smiles, inchikey, standardize, standardize_frame


@pytest.mark.parametrize(
    "given, parent",
    [
        ("[Na+].CC(=O)[O-]", "CC(=O)O"),  # salt stripped, acid neutralised
        ("[Mg+2].[O-]C(=O)c1ccccc1.[O-]C(=O)c1ccccc1", "O=C(O)c1ccccc1"),
        ("Oc1ccccn1", "O=c1cccc[nH]1"),  # canonical tautomer of 2-hydroxypyridine
        ("C[N+](=O)[O-]", "C[N+](=O)[O-]"),  # nitro stays charge-separated
        (GLYCINE_ZWITTERION, "NCC(=O)O"),  # zwitterion neutralised
        (ASPIRIN + ".O", ASPIRIN),  # solvent removed
    ],
)
def test_standardize_gives_the_parent(given, parent):
    assert canonical_smiles(given, standardized=True) == canonical_smiles(parent)


def test_steps_can_be_switched_off():
    kept = standardize("[Na+].CC(=O)[O-]", StandardizeOptions(largest_fragment=False, neutralize=False))
    assert canonical_smiles(kept) == "CC(=O)[O-].[Na+]"


def test_bonded_metal_is_rejected_not_disconnected():
    with pytest.raises(UnsupportedElementError, match="Pt"):
        standardize(CISPLATIN)


@pytest.mark.parametrize("salt", ["[Na+]", "[Fe]", "[Na+].[K+]"])
def test_a_parent_that_is_only_a_metal_ion_is_rejected(salt):
    with pytest.raises(UnsupportedElementError, match="unsupported element"):
        standardize(salt)


def test_inchikey_of_aspirin():
    assert inchikey(ASPIRIN) == "BSYNRYMUTXBXSQ-UHFFFAOYSA-N"
    # Different input forms of one compound share the standardised key.
    assert inchikey(standardize("[Na+].CC(=O)[O-]")) == inchikey("CC(=O)O")


def test_standardize_frame_records_failures_per_row():
    frame = standardize_frame([ASPIRIN, "CX", CISPLATIN, "[K+].[O-]C(=O)c1ccccc1"])
    assert frame["std_smiles"].iloc[0] == canonical_smiles(ASPIRIN)
    assert frame["std_smiles"].iloc[3] == "O=C(O)c1ccccc1"
    assert frame["error"].iloc[0] is None and frame["error"].iloc[3] is None
    assert "syntax error" in frame["error"].iloc[1]
    assert "Pt" in frame["error"].iloc[2]
    assert frame["smiles"].tolist()[1] == "CX"  # the input column is kept


def test_parse_errors_propagate_for_single_molecules():
    with pytest.raises(ParseError):
        standardize("C1CC")
