"""molops.io: parsing with clear errors, per-record failures, writers."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem

from conftest import ASPIRIN, CAFFEINE, CISPLATIN, embedded
from molops.errors import InputFileError, ParseError, UnsupportedElementError
from molops.io import (ORGANIC_ELEMENTS, check_elements, molecule_items, read_molecule, read_molecules, to_mol,
                       write_molecules)


def test_to_mol_parses_smiles_inchi_and_mols():
    aspirin = to_mol(ASPIRIN, name="aspirin")
    assert aspirin.GetNumHeavyAtoms() == 13
    assert aspirin.GetProp("_Name") == "aspirin"
    assert to_mol(aspirin) is aspirin
    methane = to_mol("InChI=1S/CH4/h1H4")
    assert Chem.MolToSmiles(methane) == "C"


@pytest.mark.parametrize(
    "smiles, reason",
    [
        ("CX", "syntax error"),
        ("C1CC", "unclosed ring"),
        ("C(C)(C)(C)(C)C", "Explicit valence for atom # 0 C, 5"),
        ("c1cccc1", "kekulize"),
        ("   ", "empty string"),
    ],
)
def test_to_mol_errors_name_input_and_reason(smiles, reason):
    with pytest.raises(ParseError) as info:
        to_mol(smiles)
    message = str(info.value)
    assert repr(smiles) in message
    assert reason in message


def test_to_mol_rejects_non_molecules():
    with pytest.raises(ParseError, match="type int"):
        to_mol(42)
    with pytest.raises(ParseError, match="no atoms"):
        to_mol(Chem.MolFromSmiles(""))  # RDKit's empty Mol, which descriptors would crash on


def test_metal_complex_rejected_by_element_check():
    mol = to_mol(CISPLATIN)  # parsing is permissive...
    with pytest.raises(UnsupportedElementError, match=r"Pt \(atom 1\)"):
        check_elements(mol)  # ...the organic-element check is not
    with pytest.raises(UnsupportedElementError):
        to_mol(CISPLATIN, allowed_elements=ORGANIC_ELEMENTS)


def test_smi_file_records_bad_lines_and_goes_on(tmp_path):
    path = tmp_path / "library.smi"
    path.write_text(f"smiles name\n{ASPIRIN} aspirin\n\nC1CC broken ring\n{CAFFEINE} caffeine\n")
    frame = read_molecules(path)
    assert list(frame["name"]) == ["aspirin", "broken ring", "caffeine"]
    assert list(frame["record"]) == [2, 4, 5]
    assert frame["mol"].iloc[0].GetNumHeavyAtoms() == 13
    assert frame["error"].iloc[0] is None and frame["error"].iloc[2] is None
    assert "library.smi line 4" in frame["error"].iloc[1]
    assert "unclosed ring" in frame["error"].iloc[1]
    with pytest.raises(ParseError, match="line 4"):
        read_molecules(path, errors="raise")
    path.write_text(f"# my library\nSMILES Name\n{ASPIRIN} aspirin\n")  # a header after a comment
    assert read_molecules(path)["name"].tolist() == ["aspirin"]


def test_csv_column_detection_and_explicit_column(tmp_path):
    path = tmp_path / "table.csv"
    pd.DataFrame({"id": ["a", "b"], "Canonical_SMILES": [ASPIRIN, "CX"], "pIC50": ["5.1", "6.2"]}).to_csv(path, index=False)
    frame = read_molecules(path)
    assert list(frame["id"]) == ["a", "b"] and list(frame["pIC50"]) == ["5.1", "6.2"]
    assert frame["mol"].iloc[0] is not None and "line 3" in frame["error"].iloc[1]
    with pytest.raises(InputFileError, match="no column 'structure'"):
        read_molecules(path, smiles_column="structure")
    path.write_text(f"smiles,name\n{ASPIRIN},a\n\nCX,b\n")  # a blank line: errors keep the file's line numbers
    frame = read_molecules(path)
    assert frame["name"].tolist() == ["a", "b"] and "line 4" in frame["error"].iloc[1]
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "nosmiles.csv", index=False)
    with pytest.raises(InputFileError, match="cannot find a SMILES column"):
        read_molecules(tmp_path / "nosmiles.csv")


def test_sdf_bad_record_does_not_shift_the_others(tmp_path, aspirin_3d):
    good = Chem.MolToMolBlock(aspirin_3d)
    # A carbon with five bonds: the record parses but fails sanitisation.
    pentavalent = Chem.MolToMolBlock(Chem.MolFromSmiles("C(C)(C)(C)(C)C", sanitize=False))
    text = f"{good}> <pIC50>\n7.5\n\n$$$$\n{pentavalent}$$$$\nnot a molfile\n$$$$\n{good}$$$$\n"
    path = tmp_path / "ligands.sdf.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    frame = read_molecules(path)
    assert list(frame["record"]) == [1, 2, 3, 4]
    assert frame["error"].iloc[0] is None and frame["error"].iloc[3] is None
    assert frame["pIC50"].iloc[0] == 7.5
    assert frame["mol"].iloc[0].GetNumAtoms() == aspirin_3d.GetNumAtoms()  # hydrogens kept
    assert "record 2" in frame["error"].iloc[1] and "valence" in frame["error"].iloc[1]
    assert "record 3" in frame["error"].iloc[2]


MOL2_ETHANOL = """@<TRIPOS>MOLECULE
ethanol
 9 8 0 0 0
SMALL
NO_CHARGES

@<TRIPOS>ATOM
      1 C1         -0.8883    0.1670   -0.0273 C.3     1  UNL1        0.0000
      2 C2          0.4658   -0.5116   -0.0368 C.3     1  UNL1        0.0000
      3 O1          1.4311    0.3229    0.5867 O.3     1  UNL1        0.0000
      4 H1         -0.8487    1.1175   -0.5695 H       1  UNL1        0.0000
      5 H2         -1.6471   -0.4704   -0.4896 H       1  UNL1        0.0000
      6 H3         -1.1964    0.3898    0.9977 H       1  UNL1        0.0000
      7 H4          0.7920   -0.7358   -1.0574 H       1  UNL1        0.0000
      8 H5          0.4056   -1.4612    0.5042 H       1  UNL1        0.0000
      9 H6          1.4860    1.1818    0.0920 H       1  UNL1        0.0000
@<TRIPOS>BOND
     1     1     2    1
     2     2     3    1
     3     1     4    1
     4     1     5    1
     5     1     6    1
     6     2     7    1
     7     2     8    1
     8     3     9    1
"""


def test_mol2_records(tmp_path):
    path = tmp_path / "ethanol.mol2"
    path.write_text(MOL2_ETHANOL + MOL2_ETHANOL.replace("C.3     1", "Xx.9    1", 1))
    frame = read_molecules(path)
    assert frame["name"].iloc[0] == "ethanol"
    assert Chem.MolToSmiles(Chem.RemoveHs(frame["mol"].iloc[0])) == "CCO"
    assert frame["error"].iloc[1] is not None and "record 2" in frame["error"].iloc[1]
    (tmp_path / "empty.mol2").write_text("nothing here\n")
    with pytest.raises(InputFileError, match="not a MOL2 file"):
        read_molecules(tmp_path / "empty.mol2")


def test_pdb_ligand_bond_orders_from_hydrogens_or_template(tmp_path, aspirin_3d):
    with_h = tmp_path / "aspirin_h.pdb"
    with_h.write_text(Chem.MolToPDBBlock(aspirin_3d))
    assert Chem.MolToSmiles(Chem.RemoveHs(read_molecule(with_h))) == Chem.CanonSmiles(ASPIRIN)

    heavy = tmp_path / "aspirin.pdb"
    heavy.write_text(Chem.MolToPDBBlock(Chem.RemoveHs(aspirin_3d)))
    with pytest.raises(ParseError, match="template_smiles"):
        read_molecule(heavy)
    mol = read_molecule(heavy, template_smiles=ASPIRIN)
    assert Chem.MolToSmiles(mol) == Chem.CanonSmiles(ASPIRIN)
    with pytest.raises(ParseError, match="does not match"):
        read_molecule(heavy, template_smiles=CAFFEINE)


def test_malformed_pdb_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pdb"
    path.write_text("HEADER    nothing\nREMARK   no atoms at all\nEND\n")
    with pytest.raises(InputFileError, match="no ATOM/HETATM records"):
        read_molecules(path)
    garbled = tmp_path / "garbled.pdb"
    garbled.write_text("HETATM    1  C1  LIG A   1     xx.xxx  yy.yyy  zz.zzz  1.00  0.00           C\nEND\n")
    frame = read_molecules(garbled)
    assert frame["mol"].iloc[0] is None and "garbled.pdb record 1" in frame["error"].iloc[0]


def test_xyz_frames_charge_and_bad_elements(tmp_path):
    acetate = embedded("CC(=O)[O-]")
    block = Chem.MolToXYZBlock(acetate)
    lines = block.splitlines()
    charged = "\n".join([lines[0], "acetate charge=-1", *lines[2:]]) + "\n"
    unknown = "1\nmystery\nQq 0.0 0.0 0.0\n"
    path = tmp_path / "frames.xyz"
    path.write_text(charged + block + unknown)
    frame = read_molecules(path)
    assert Chem.MolToSmiles(Chem.RemoveHs(frame["mol"].iloc[0])) == "CC(=O)[O-]"
    assert frame["name"].iloc[0] == "acetate charge=-1"
    # Same geometry read as neutral: no valid bond orders exist, and the error says so.
    assert "charge 0" in frame["error"].iloc[1]
    assert "record 3" in frame["error"].iloc[2]
    (tmp_path / "short.xyz").write_text("5\ncut short\nC 0 0 0\n")
    with pytest.raises(InputFileError, match="ends after 1 of 5 atoms"):
        read_molecules(tmp_path / "short.xyz")


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_molecules(tmp_path / "absent.sdf")
    weird = tmp_path / "molecules.docx"
    weird.write_text("x")
    with pytest.raises(InputFileError, match="unknown format '.docx'.*supported"):
        read_molecules(weird)
    (tmp_path / "two.smi").write_text("CCO\nCCN\n")
    with pytest.raises(InputFileError, match="expected one molecule, found 2"):
        read_molecule(tmp_path / "two.smi")


def test_writers_round_trip(tmp_path, aspirin_3d):
    frame = pd.DataFrame({"name": ["aspirin", "bad"], "mol": [aspirin_3d, None], "score": [1.5, float("nan")],
                          "error": [None, "boom"]})
    sdf = write_molecules(frame, tmp_path / "out.sdf")
    back = read_molecules(sdf)
    assert len(back) == 1 and back["name"].iloc[0] == "aspirin" and back["score"].iloc[0] == 1.5
    assert back["mol"].iloc[0].GetConformer().Is3D()
    csv = pd.read_csv(write_molecules(frame, tmp_path / "out.csv"))
    assert list(csv.columns) == ["smiles", "name", "score", "error"]
    assert csv["smiles"].iloc[0] == Chem.MolToSmiles(aspirin_3d) and csv["error"].iloc[1] == "boom"
    parquet = pd.read_parquet(write_molecules(frame, tmp_path / "out.parquet"))
    assert parquet["name"].tolist() == ["aspirin", "bad"]
    smi = write_molecules([to_mol("CCO"), None], tmp_path / "out.smi")
    assert smi.read_text() == "CCO\n"
    with pytest.raises(InputFileError, match="unknown format"):
        write_molecules(frame, tmp_path / "out.xlsx")


def test_upper_case_gzip_suffix_and_negative_xyz_atom_count(tmp_path):
    upper = tmp_path / "LIB.SMI.GZ"
    with gzip.open(upper, "wt") as handle:
        handle.write("CCO ethanol\n")
    assert read_molecules(upper)["error"].isna().all()  # decompressed, not parsed as gzip bytes
    bad = tmp_path / "bad.xyz"
    bad.write_text("-1\ncomment\nO 0 0 0\n")
    with pytest.raises(InputFileError, match="expected an atom count, got '-1'"):
        read_molecules(bad)


def test_sdf_and_smi_writers_leave_out_rows_without_a_molecule(tmp_path):
    frame = pd.DataFrame({"smiles": ["CCO", np.nan, None], "status": ["ok", "failed", "failed"], "score": [1.5, np.nan, np.nan]})
    write_molecules(frame, tmp_path / "out.sdf")
    records = list(Chem.SDMolSupplier(str(tmp_path / "out.sdf")))
    assert len(records) == 1 and records[0].GetProp("status") == "ok" and records[0].GetDoubleProp("score") == 1.5
    write_molecules(frame, tmp_path / "out.smi")
    assert (tmp_path / "out.smi").read_text() == "CCO\n"


def test_molecule_items_take_the_structure_over_a_smiles_tag(tmp_path):
    # An SD file whose SMILES tag disagrees with its structure: the structure is what a
    # batch job docks or optimises, so it decides the SMILES.
    path = tmp_path / "leads.sdf"
    with Chem.SDWriter(str(path)) as writer:
        for title, smiles, tag in (("aspirin", ASPIRIN, "CCO"), ("", "c1ccccc1O", "c1ccccc1O")):
            mol = Chem.MolFromSmiles(smiles)
            mol.SetProp("_Name", title)
            mol.SetProp("smiles", tag)
            writer.write(mol)
    frame = read_molecules(path)
    items = molecule_items(frame)
    assert [i["name"] for i in items] == ["aspirin", "Oc1ccccc1"]  # untitled: named by its SMILES
    assert items[0]["smiles"] == Chem.MolToSmiles(Chem.MolFromSmiles(ASPIRIN))
    assert all(isinstance(i["mol"], Chem.Mol) and i["error"] is None for i in items)


def test_molecule_items_keep_parse_errors_and_name_rows_without_a_molecule(tmp_path):
    path = tmp_path / "leads.smi"
    path.write_text(f"{ASPIRIN} aspirin\nC1CC broken\n")
    items = molecule_items(read_molecules(path))
    assert items[0]["error"] is None and items[0]["name"] == "aspirin"
    assert items[1]["name"] == "broken" and items[1]["mol"] is None
    assert "line 2" in items[1]["error"] and "unclosed ring" in items[1]["error"]
    frame = pd.DataFrame({"record": [7], "mol": [None], "error": [None]})
    (item,) = molecule_items(frame)
    assert item["name"] == "record 7" and item["error"] == "record 7: no molecule"
    # Strings and Mols: strings are passed on unparsed (the worker records its own error).
    named = Chem.MolFromSmiles("CCO")
    named.SetProp("_Name", "ethanol")
    assert [(i["name"], i["smiles"]) for i in molecule_items(["CX", named])] == [("CX", "CX"), ("ethanol", "CCO")]
    # A caller's own table with numeric compound IDs keeps them as names; a missing ID falls back.
    ids = molecule_items(pd.DataFrame({"smiles": ["CCO", "CCN"], "name": [1042, float("nan")]}))
    assert [i["name"] for i in ids] == ["1042", "CCN"]
