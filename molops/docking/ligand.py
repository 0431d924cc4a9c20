"""Ligand preparation for Vina: parent molecule, protonation at a pH, 3D embedding, Meeko PDBQT.

Steps, in order:
1. standardise to the parent (RDKit MolStandardize cleanup, largest organic fragment,
   neutralise; the input tautomer is kept, since RDKit's canonical tautomer is not the
   dominant one in water);
2. protonate at ``ph`` (default 7.4) with molscrub, the Meeko authors' preparation tool: its
   documented rule set is a table of acid/base reaction SMARTS with pKa values (carboxylic
   acids, tetrazoles, aliphatic amines, amidines, guanidines, ...). Dimorphite-DL was tried
   first and rejected: it charges every site independently and turned PoseBusters' 1UOU
   ligand (a 5-chlorouracil) into a dianion, which molscrub leaves neutral;
3. embed in 3D (ETKDGv3) and minimise with MMFF94 (the lowest of a few embeddings: Vina keeps
   non-aromatic rings rigid, so the starting ring conformation matters);
4. assign AutoDock atom types, Gasteiger charges and torsion tree with Meeko, written as PDBQT.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from rdkit import Chem

from molops.conformers import generate_conformers
from molops.errors import DockingError, describe_input
from molops.io import check_elements, mol_to_smiles, rdkit_errors, to_mol
from molops.standardize import StandardizeOptions, standardize

__all__ = ["LIGAND_ELEMENTS", "PreparedLigand", "prepare_ligand", "protonate"]

log = logging.getLogger(__name__)

#: Elements Vina's scoring functions have ligand atom types for (boron and silicon have none).
LIGAND_ELEMENTS: frozenset[str] = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"})

_PARENT = StandardizeOptions(canonical_tautomer=False)


@dataclass(frozen=True)
class PreparedLigand:
    """A ligand ready for Vina.

    Attributes:
        name: the caller's name for it (or its SMILES).
        smiles: canonical SMILES of the parent molecule (before protonation).
        docked_smiles: canonical SMILES of the protonation state that is docked.
        protonation: how that state was chosen, e.g. "pH 7.4 (molscrub rules)".
        mol: the docked state with explicit hydrogens and one 3D conformer (Å).
        pdbqt: Meeko's PDBQT text of `mol`.
    """

    name: str
    smiles: str
    docked_smiles: str
    protonation: str
    mol: Chem.Mol
    pdbqt: str


def protonate(molecule: str | Chem.Mol, ph: float = 7.4) -> tuple[Chem.Mol, str]:
    """Most likely protonation state of `molecule` at `ph` (molscrub's acid/base rules).

    The tautomer is left as given. Returns (molecule in that state, description of how it was
    chosen). If molscrub returns no state, the input state is returned and the description
    says so, so that callers report it rather than hide it.
    """
    mol = to_mol(molecule)
    scrub = _scrubber(float(ph))
    try:
        with rdkit_errors():
            states = list(scrub(Chem.Mol(mol)))
    except (ValueError, RuntimeError) as exc:
        log.warning("%s: molscrub failed (%s); docking the input state", mol_to_smiles(mol), exc)
        states = []
    if not states:
        return mol, "input state (molscrub found none)"
    return Chem.RemoveHs(states[0]), f"pH {ph:g} (molscrub rules)"


@functools.lru_cache(maxsize=4)
def _scrubber(ph: float):  # -> molscrub.Scrub
    from molscrub import Scrub

    return Scrub(ph_low=ph, skip_tautomers=True, skip_gen3d=True)


def prepare_ligand(
    molecule: str | Chem.Mol,
    *,
    ph: float | None = 7.4,
    seed: int = 0,
    name: str | None = None,
) -> PreparedLigand:
    """Standardise, protonate, embed and type a ligand for Vina.

    Args:
        molecule: SMILES or RDKit Mol (its coordinates, if any, are not used: the ligand is
            re-embedded so that results do not depend on the input pose).
        ph: protonate at this pH; None docks the neutral parent as it is.
        seed: embedding seed (equal seeds give identical starting geometries).
        name: label used in results and error messages.

    Raises:
        ParseError / UnsupportedElementError / ConformerError: bad molecule, an element Vina
            cannot type (e.g. B, Si, metals), or failed embedding.
        DockingError: Meeko cannot prepare the molecule; the message gives Meeko's reason.
    """
    from meeko import MoleculePreparation, PDBQTWriterLegacy

    parent = standardize(molecule, _PARENT)
    smiles = mol_to_smiles(parent) or ""
    label = name or describe_input(molecule if isinstance(molecule, str) else smiles)
    check_elements(parent, LIGAND_ELEMENTS, f"ligand {label}")
    state, protonation = protonate(parent, ph) if ph is not None else (parent, "neutral parent")
    ensemble = generate_conformers(
        state, n_conformers=1, oversample=3, seed=seed, energy_window_kcal_mol=None
    )
    mol = ensemble.conformer(0)
    try:
        with rdkit_errors():
            setups = MoleculePreparation().prepare(mol)
            pdbqt, ok, message = PDBQTWriterLegacy.write_string(setups[0])
    except (ValueError, RuntimeError, KeyError) as exc:
        raise DockingError(f"ligand {label}: Meeko cannot prepare it: {exc}") from None
    if not ok:
        raise DockingError(f"ligand {label}: Meeko cannot write PDBQT: {message.strip()}")
    return PreparedLigand(
        name=name or smiles,
        smiles=smiles,
        docked_smiles=mol_to_smiles(Chem.RemoveHs(mol)) or "",
        protonation=protonation,
        mol=mol,
        pdbqt=pdbqt,
    )
