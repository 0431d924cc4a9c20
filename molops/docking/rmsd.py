"""Symmetry-aware heavy-atom RMSD between two poses of one molecule, without superposition.

Docking poses are compared in the receptor's frame, so no alignment is done. Atoms are
matched by graph isomorphism on elements and connectivity only (bond orders, charges and
hydrogens ignored), so a docked protonation state or a different Kekulé form still matches its
crystal pose; the smallest RMSD over all such matches (symmetric groups such as a phenyl ring
or a carboxylate) is returned.
"""

from __future__ import annotations

import numpy as np
from rdkit import Chem

from molops.errors import DockingError

__all__ = ["heavy_atom_rmsd"]

#: Symmetric molecules can have very many automorphisms; RDKit's match search stops here.
MAX_MATCHES = 100_000


def _skeleton(mol: Chem.Mol) -> Chem.Mol:
    """Heavy atoms and connectivity only: every bond single, no charges, no aromatic flags."""
    heavy = Chem.RWMol(Chem.RemoveHs(mol, sanitize=False))
    for atom in heavy.GetAtoms():
        atom.SetFormalCharge(0)
        atom.SetIsAromatic(False)
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0)
    for bond in heavy.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    skeleton = heavy.GetMol()
    skeleton.UpdatePropertyCache(strict=False)
    return skeleton


def heavy_atom_rmsd(probe: Chem.Mol, reference: Chem.Mol, probe_conf: int = -1, ref_conf: int = -1) -> float:
    """RMSD (Å) over heavy atoms of `probe` vs `reference`, minimised over graph symmetries.

    Raises:
        DockingError: the two molecules do not have the same heavy-atom graph.
    """
    probe_skeleton, ref_skeleton = _skeleton(probe), _skeleton(reference)
    if probe_skeleton.GetNumAtoms() != ref_skeleton.GetNumAtoms():
        raise DockingError(
            f"RMSD needs the same molecule: {probe_skeleton.GetNumAtoms()} vs "
            f"{ref_skeleton.GetNumAtoms()} heavy atoms"
        )
    matches = probe_skeleton.GetSubstructMatches(
        ref_skeleton, uniquify=False, useChirality=False, maxMatches=MAX_MATCHES
    )
    if not matches:
        raise DockingError("RMSD needs the same molecule: the heavy-atom graphs differ")
    xyz_probe = probe_skeleton.GetConformer(probe_conf).GetPositions()
    xyz_ref = ref_skeleton.GetConformer(ref_conf).GetPositions()
    order = np.asarray(matches)  # order[k, i]: probe atom matched to reference atom i
    deltas = xyz_probe[order] - xyz_ref[None, :, :]
    return float(np.sqrt((deltas**2).sum(axis=2).mean(axis=1)).min())
