"""molops.docking: ligand/receptor preparation, Vina docking, batch resume, objective, CLI."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molops.docking import (
    Box,
    DockingSettings,
    Target,
    box_from_ligand,
    dock,
    dock_library,
    heavy_atom_rmsd,
    list_targets,
    load_target,
    prepare_ligand,
    prepare_receptor,
)
from molops.docking import engine
from molops.errors import DockingError, InputFileError, ReceptorError, UnsupportedElementError
from molops.io import read_molecule
from molops.objectives import docking

QUICK = DockingSettings(exhaustiveness=1, n_poses=3, seed=0, cpu=1)
PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"


def posebusters_complex(pdb_id: str) -> tuple[Path, Path]:
    import posebusters

    folder = Path(posebusters.__file__).parent / "datasets" / "pdb" / pdb_id
    return folder / f"{pdb_id}_protein_one_lig_removed.pdb", folder / f"{pdb_id}_ligand.sdf"


def test_ligands_are_protonated_at_ph_7_4():
    amine = prepare_ligand("CCN(CC)CCNC(=O)c1ccc(N)cc1")  # procainamide: tertiary amine
    assert amine.docked_smiles == "CC[NH+](CC)CCNC(=O)c1ccc(N)cc1"
    assert amine.smiles == "CCN(CC)CCNC(=O)c1ccc(N)cc1"
    acid = prepare_ligand("CC(=O)Oc1ccccc1C(=O)O")  # aspirin
    assert acid.docked_smiles.endswith("C(=O)[O-]")
    assert prepare_ligand("c1ccncc1").docked_smiles == "c1ccncc1"  # pyridine pKa 5.2: neutral
    neutral = prepare_ligand("CCN(CC)CC", ph=None)
    assert neutral.docked_smiles == "CCN(CC)CC" and neutral.protonation == "neutral parent"


def test_ligand_preparation_strips_salts_and_types_for_vina():
    ligand = prepare_ligand("[Na+].CC(=O)[O-]", name="sodium acetate")
    assert ligand.smiles == "CC(=O)O" and ligand.docked_smiles == "CC(=O)[O-]"
    assert ligand.mol.GetNumConformers() == 1
    assert "ROOT" in ligand.pdbqt and " OA" in ligand.pdbqt
    with pytest.raises(UnsupportedElementError, match="B"):
        prepare_ligand("OB(O)c1ccccc1", name="phenylboronic acid")


def test_dockstring_targets_and_unknown_name():
    names = list_targets()
    assert len(names) == 58 and "DRD2" in names and "ESR1" in names
    target = load_target("drd2")
    assert target.name == "DRD2" and target.box.size == (30.0, 30.0, 32.0)
    with pytest.raises(DockingError, match="did you mean DRD2"):
        load_target("DRD22")


def test_box_outside_the_receptor_is_rejected():
    drd2 = load_target("DRD2")
    with pytest.raises(DockingError, match="contains no receptor atom"):
        Target("DRD2 far away", drd2.receptor_pdbqt, Box((500.0, 0.0, 0.0), (20.0, 20.0, 20.0)))
    with pytest.raises(DockingError, match="positive"):
        Box((0, 0, 0), (20, -1, 20))
    with pytest.raises(DockingError, match="NaN"):
        Box((0, float("nan"), 0), (20, 20, 20))


def test_malformed_and_missing_receptor_files(tmp_path):
    junk = tmp_path / "junk.pdb"
    junk.write_text("HEADER    not really a protein\nATOM      1  garbage line\nEND\n")
    with pytest.raises(ReceptorError, match="junk.pdb"):
        prepare_receptor(junk, box=Box((0, 0, 0), (20, 20, 20)))
    with pytest.raises(InputFileError, match="missing.pdb"):
        prepare_receptor(tmp_path / "missing.pdb", box=Box((0, 0, 0), (20, 20, 20)))
    protein, ligand = posebusters_complex("1s3v")
    with pytest.raises(DockingError, match="either a box"):
        prepare_receptor(protein)


def test_small_ligand_docks_into_drd2_with_a_plausible_score():
    result = dock(PARACETAMOL, "DRD2", QUICK, name="paracetamol")
    scores = result.scores_kcal_mol
    assert -9.0 < result.score_kcal_mol < -4.0  # a 11-heavy-atom fragment, kcal/mol
    assert scores == sorted(scores) and result.poses.GetNumConformers() == len(scores)
    pose = result.pose(0)
    xyz = pose.GetConformer().GetPositions()
    assert load_target("DRD2").box.contains(xyz).all()
    assert pose.GetDoubleProp("vina_score_kcal_mol") == pytest.approx(scores[0])
    sdf = result.sdf()
    assert sdf.count("$$$$") == len(scores) and "vina_score_kcal_mol" in sdf
    # Same seed, same maps: identical scores (the worker cache reuses the docker).
    assert dock(PARACETAMOL, "DRD2", QUICK).scores_kcal_mol == scores


def test_batch_records_failures_per_row_and_resumes(tmp_path, monkeypatch):
    ligands = [PARACETAMOL, "C1CCX", "OB(O)c1ccccc1", "c1ccccc1O"]
    out, poses = tmp_path / "drd2.parquet", tmp_path / "poses.sdf"
    first = dock_library(ligands[:2], "DRD2", out=out, poses=poses, settings=QUICK,
                         processes=False, n_workers=1, progress=False)
    assert list(first["status"]) == ["ok", "failed"]
    assert "C1CCX" in first["error"].iloc[1] and math.isnan(first["vina_score_kcal_mol"].iloc[1])
    # A kill while writing poses leaves a record without a journal row; resume drops it.
    with open(poses, "a") as handle:
        handle.write("half a record\n> <key>\n3\n\n$$$$\npartial")

    calls = []
    original = engine.VinaDocker.dock_molecule
    monkeypatch.setattr(engine.VinaDocker, "dock_molecule",
                        lambda self, mol, **kw: calls.append(mol) or original(self, mol, **kw))
    full = dock_library(ligands, "DRD2", out=out, poses=poses, settings=QUICK,
                        processes=False, n_workers=1, progress=False)
    assert calls == ligands[2:]  # rows 0 and 1 come from the journal
    assert list(full["status"]) == ["ok", "failed", "failed", "ok"]
    assert "unsupported element" in full["error"].iloc[2]
    assert full["vina_score_kcal_mol"].iloc[0] == first["vina_score_kcal_mol"].iloc[0]
    table = pd.read_parquet(out)
    assert len(table) == 4 and set(table["key"]) == {0, 1, 2, 3}
    records = [m for m in Chem.SDMolSupplier(str(poses)) if m is not None]
    keys = [int(m.GetProp("key")) for m in records]
    assert set(keys) == {0, 3}  # poses of the docked ligands, none of the cut-off record
    best = [m for m in records if int(m.GetProp("key")) == 0 and m.GetIntProp("pose") == 1]
    assert len(best) == 1
    assert best[0].GetDoubleProp("vina_score_kcal_mol") == pytest.approx(full["vina_score_kcal_mol"].iloc[0])
    # Resuming under other settings or another target is refused instead of mixing results.
    with pytest.raises(DockingError, match=r"other settings \(ph: 7.4 then, 6.0 now\)"):
        dock_library(ligands, "DRD2", out=out, settings=replace(QUICK, ph=6.0), processes=False, progress=False)
    with pytest.raises(DockingError, match="target: DRD2 .* then, ESR1"):
        dock_library(ligands, "ESR1", out=out, settings=QUICK, processes=False, progress=False)
    # A journal from another ligand list is refused instead of mixing results.
    with pytest.raises(DockingError, match="another ligand list"):
        dock_library(["CCO"], "DRD2", out=out, settings=QUICK, processes=False, progress=False)


def test_a_retried_ligand_has_one_row_in_the_results(tmp_path, monkeypatch, caplog):
    out = tmp_path / "drd2.parquet"
    original = engine.VinaDocker.dock_molecule

    def crash(self, mol, **kw):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(engine.VinaDocker, "dock_molecule", crash)
    first = dock_library([PARACETAMOL], "DRD2", out=out, settings=QUICK, processes=False, n_workers=1)
    assert list(first["status"]) == ["failed"] and "worker lost" in first["error"].iloc[0]
    monkeypatch.setattr(engine.VinaDocker, "dock_molecule", original)
    retried = dock_library([PARACETAMOL], "DRD2", out=out, settings=QUICK, processes=False, n_workers=1,
                           retry_failed=True)
    assert list(retried["status"]) == ["ok"]
    # Resuming again keeps only the ligand's latest row, not its earlier failure as well.
    again = dock_library([PARACETAMOL], "DRD2", out=out, settings=QUICK, processes=False, n_workers=1,
                         retry_failed=True, poses=tmp_path / "poses.sdf")
    assert "1 ligands docked in an earlier run without --poses have no poses" in caplog.text
    table = pd.read_parquet(out)
    assert list(table["status"]) == ["ok"] and list(again["status"]) == ["ok"]
    assert table["vina_score_kcal_mol"].iloc[0] == retried["vina_score_kcal_mol"].iloc[0]


def test_user_receptor_from_pdb_and_reference_ligand():
    protein, ligand_file = posebusters_complex("1s3v")
    crystal = read_molecule(ligand_file)
    box = box_from_ligand(ligand_file, padding=4.0)
    xyz = crystal.GetConformer().GetPositions()
    assert np.allclose(box.center, (xyz.min(0) + xyz.max(0)) / 2)
    assert np.allclose(box.size, xyz.max(0) - xyz.min(0) + 8.0)
    target = prepare_receptor(protein, ligand=ligand_file, padding=4.0)
    assert target.name == "1s3v_protein_one_lig_removed"
    lines = [l for l in target.receptor_pdbqt.splitlines() if l.startswith("ATOM")]
    assert any(l[77:79].strip() == "HD" for l in lines)  # Meeko added polar hydrogens
    assert not any(" HOH " in l for l in lines)
    result = dock("CC(=O)Nc1ccc(O)cc1", target, QUICK)
    assert result.score_kcal_mol < -3.0


def test_symmetry_aware_heavy_atom_rmsd():
    mol = Chem.AddHs(Chem.MolFromSmiles("OC(=O)c1ccccc1"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    ring_flip = Chem.RenumberAtoms(mol, [0, 1, 2, 3, 8, 7, 6, 5, 4] + list(range(9, mol.GetNumAtoms())))
    assert heavy_atom_rmsd(ring_flip, mol) == pytest.approx(0.0, abs=1e-6)
    charged = Chem.Mol(mol)
    charged.GetAtomWithIdx(0).SetFormalCharge(-1)  # a carboxylate still matches its acid
    assert heavy_atom_rmsd(charged, mol) == pytest.approx(0.0, abs=1e-6)
    shifted = Chem.Mol(mol)
    conf = shifted.GetConformer()
    for i in range(shifted.GetNumAtoms()):
        p = conf.GetAtomPosition(i)
        conf.SetAtomPosition(i, (p.x + 1.0, p.y, p.z))
    assert heavy_atom_rmsd(shifted, mol) == pytest.approx(1.0)
    with pytest.raises(DockingError, match="same molecule"):
        heavy_atom_rmsd(Chem.AddHs(Chem.MolFromSmiles("CCO")), mol)


def test_docking_objective_marks_failures_instead_of_scoring_zero():
    objective = docking("DRD2", exhaustiveness=1)
    assert objective.direction == "minimize" and objective.better(-8.0, -7.0)
    frame = objective.evaluate([PARACETAMOL, "not a smiles", "OB(O)c1ccccc1"])
    assert frame["vina_score_kcal_mol"].iloc[0] < -4.0
    assert frame["vina_score_kcal_mol"].iloc[1:].isna().all()
    assert "cannot parse" in frame["error"].iloc[1] and "B" in frame["error"].iloc[2]
    assert not objective.better(float("nan"), -5.0)
    # Cached by canonical SMILES: a second call (another spelling) does not dock again.
    again = objective(["c1cc(O)ccc1NC(C)=O"])
    assert again[0] == frame["vina_score_kcal_mol"].iloc[0]


def test_docking_objective_on_a_cluster_marks_a_batch_where_every_ligand_fails():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        frame = docking("DRD2", exhaustiveness=1, scheduler=client).evaluate(["not a smiles", "OB(O)c1ccccc1"])
    assert frame["vina_score_kcal_mol"].isna().all() and "cannot parse" in frame["error"].iloc[0]


def test_docking_objective_names_everything_its_score_depends_on():
    # A resumed batch run compares descriptions: receptor and box, search settings and pH.
    base = docking("DRD2", exhaustiveness=1)
    assert "DRD2" in base.description and "exhaustiveness 1, seed 0, pH 7.4" in base.description
    assert docking("DRD2", exhaustiveness=1, ph=6.0).description != base.description
    assert docking("ESR1", exhaustiveness=1).description.split("(receptor and box ")[1] != \
        base.description.split("(receptor and box ")[1]
    threads = docking("DRD2", cpu=1).compute.args[1].cpu  # one Vina thread: callers running one job per core
    assert threads == 1 and base.compute.args[1].cpu == 0


def test_cli_dock(tmp_path):
    from typer.testing import CliRunner

    from molops.cli import app

    library = tmp_path / "ligands.smi"
    library.write_text(f"{PARACETAMOL} paracetamol\nC1CCX broken\n")
    out, poses = tmp_path / "results.csv", tmp_path / "poses.sdf"
    args = ["dock", str(library), "--target", "DRD2", "--exhaustiveness", "1", "--n-poses", "2",
            "--out", str(out), "--poses", str(poses), "--workers", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table["name"]) == ["paracetamol", "broken"]
    assert list(table["status"]) == ["ok", "failed"]
    assert (tmp_path / "results.parquet").exists() and poses.read_text().count("$$$$") >= 1
    missing = CliRunner().invoke(app, ["dock", "CCO", "--out", str(out)])
    assert missing.exit_code == 1 and "--target" in missing.output
    half_box = CliRunner().invoke(app, ["dock", "CCO", "--target", "DRD2", "--center", "1", "2", "3", "--out", str(out)])
    assert half_box.exit_code == 1 and "give both or neither" in half_box.output
    # An output the writer cannot produce is refused before any docking.
    text_out = CliRunner().invoke(app, ["dock", "CCO", "--target", "DRD2", "--out", str(tmp_path / "hits.txt")])
    assert text_out.exit_code == 2 and "hits.txt" in text_out.output and not (tmp_path / "hits.parquet").exists()


def test_cofactor_kept_in_the_receptor_with_template_bond_orders():
    protein, ligand_file = posebusters_complex("1ia1")
    target = prepare_receptor(protein, ligand=ligand_file, cofactors=["NDP"])
    cofactor = [l for l in target.receptor_pdbqt.splitlines() if l[17:20] == "NDP"]
    assert len([l for l in cofactor if l[77:79].strip() != "HD"]) == 2 * 48  # both copies, all heavy atoms
    assert any(l[77:79].strip() == "A" for l in cofactor)  # adenine typed aromatic
    bare = prepare_receptor(protein, ligand=ligand_file)
    assert "NDP" not in bare.receptor_pdbqt and " TQ3 " not in bare.receptor_pdbqt
    with pytest.raises(ReceptorError, match="does not fit"):
        prepare_receptor(protein, ligand=ligand_file, cofactors={"NDP": "c1ccccc1"})
    with pytest.raises(ReceptorError, match="no SMILES known"):
        prepare_receptor(protein, ligand=ligand_file, cofactors=["XYZ"])
    with pytest.raises(ReceptorError, match="no HETATM residue named 'HEM'"):
        prepare_receptor(protein, ligand=ligand_file, cofactors={"HEM": "c1ccccc1"})


def test_equal_seeds_give_equal_results_in_fresh_dockers():
    """Vina treats seed 0 as 'draw one at random'; molops' seeds (0 included) must reproduce."""
    from molops.docking import DockingSettings
    from molops.docking.engine import VinaDocker

    settings = DockingSettings(exhaustiveness=1, n_poses=1, seed=0, cpu=1)
    first = VinaDocker("DRD2", settings).dock_molecule("CN1CCCC1c1cccnc1").scores_kcal_mol
    second = VinaDocker("DRD2", settings).dock_molecule("CN1CCCC1c1cccnc1").scores_kcal_mol
    assert first == second


@pytest.mark.parametrize("ph", [float("nan"), 25.0, -1.0])
def test_impossible_ph_is_refused(ph):
    with pytest.raises(DockingError, match="pH .* outside"):
        DockingSettings(ph=ph)
