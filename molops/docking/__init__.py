"""Docking with AutoDock Vina: ligand and receptor preparation, targets, batch docking.

Typical use::

    from molops.docking import dock, dock_library, load_target, prepare_receptor

    dock("CCN(CC)CCNC(=O)c1ccc(N)cc1", "DRD2", exhaustiveness=8).score_kcal_mol
    dock_library(smiles_list, "DRD2", out="drd2.parquet", poses="drd2_poses.sdf")
    target = prepare_receptor("protein.pdb", ligand="crystal_ligand.sdf", padding=5.0)

Scores are Vina's (kcal/mol, lower is better). Ligands are protonated at pH 7.4
(molscrub's acid/base rules), embedded with ETKDGv3/MMFF94 and typed by Meeko.
"""

from molops.docking.batch import RESULT_SCHEMA, dock_library
from molops.docking.engine import DockingResult, DockingSettings, VinaDocker, dock, docker_for
from molops.docking.ligand import LIGAND_ELEMENTS, PreparedLigand, prepare_ligand, protonate
from molops.docking.receptor import Box, Target, box_from_ligand, list_targets, load_target, prepare_receptor
from molops.docking.rmsd import heavy_atom_rmsd

__all__ = [
    "Box",
    "DockingResult",
    "DockingSettings",
    "LIGAND_ELEMENTS",
    "PreparedLigand",
    "RESULT_SCHEMA",
    "Target",
    "VinaDocker",
    "box_from_ligand",
    "dock",
    "dock_library",
    "docker_for",
    "heavy_atom_rmsd",
    "list_targets",
    "load_target",
    "prepare_ligand",
    "prepare_receptor",
    "protonate",
]
