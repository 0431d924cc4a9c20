"""Drug-likeness descriptors and structural alerts, for one molecule or a whole table.

All values come from RDKit: Crippen cLogP, TPSA (Ertl, N and O only), H-bond acceptors and
donors (``rdMolDescriptors.CalcNumHBA/HBD``), QED (Bickerton 2012), the SA score of Ertl &
Schuffenhauer as shipped in ``rdkit.Contrib.SA_Score`` (1 = easy ... 10 = hard), and PAINS
(A/B/C) and Brenk alerts from RDKit's FilterCatalog.

Penalised logP follows the JT-VAE definition (Jin et al. 2018, as in the authors' code):
``z(logP) + z(-SA) + z(-max(0, largest_cycle - 6))`` with each term standardised by the
ZINC-250k means and standard deviations below; the largest cycle is taken from the cycle
basis of the molecular graph.

Lipinski's rule of five here counts violations of MW <= 500 Da, cLogP <= 5, HBD <= 5,
HBA <= 10 and passes with at most one violation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import networkx as nx
import pandas as pd
from rdkit import Chem
from rdkit.Chem import QED, Crippen, Descriptors, rdMolDescriptors
from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams
from rdkit.Contrib.SA_Score import sascorer

from molops.errors import describe_input
from molops.io import ORGANIC_ELEMENTS, check_elements, mol_to_smiles, to_mol
from molops.table import apply_rows, molecule_frame

__all__ = ["QED_MAX", "SA_RANGE", "MolecularDescriptors", "compute_descriptors", "describe", "penalized_logp", "sa_score"]

#: An upper bound of RDKit's QED (mean weights): every desirability function at its best
#: value over the values its property can take (integer counts for HBA, HBD, ROTB, AROM,
#: ALERTS): 0.9484. No molecule can gain 0.1 QED from above 0.8484.
QED_MAX = 0.9484
#: The synthetic-accessibility score's scale (Ertl & Schuffenhauer): 1 easy … 10 hard.
SA_RANGE = (1.0, 10.0)

# ZINC-250k statistics used by JT-VAE's penalised logP (signs as in the reference code).
_LOGP_MEAN, _LOGP_STD = 2.4570953396190123, 1.434324401111988
_SA_MEAN, _SA_STD = -3.0525811293166134, 0.8335207024513095
_CYCLE_MEAN, _CYCLE_STD = -0.0485696876403053, 0.2860212110245455


@dataclass(frozen=True)
class MolecularDescriptors:
    """Descriptors of one molecule (units in the names: Da, Å²)."""

    molecular_weight_da: float
    clogp: float
    tpsa_a2: float
    hba: int
    hbd: int
    rotatable_bonds: int
    heavy_atoms: int
    rings: int
    aromatic_rings: int
    fraction_csp3: float
    qed: float
    sa_score: float
    penalized_logp: float
    lipinski_violations: int
    passes_lipinski: bool
    n_pains_alerts: int
    pains_alerts: str
    n_brenk_alerts: int
    brenk_alerts: str


DESCRIPTOR_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(MolecularDescriptors))


@lru_cache(maxsize=None)
def _catalog(name: str) -> FilterCatalog:
    catalogs = {
        "pains": FilterCatalogParams.FilterCatalogs.PAINS,
        "brenk": FilterCatalogParams.FilterCatalogs.BRENK,
    }
    params = FilterCatalogParams()
    params.AddCatalog(catalogs[name])
    return FilterCatalog(params)


def _alerts(mol: Chem.Mol, catalog: str) -> list[str]:
    return sorted({entry.GetDescription() for entry in _catalog(catalog).GetMatches(mol)})


def sa_score(molecule: str | Chem.Mol) -> float:
    """Synthetic accessibility score (Ertl & Schuffenhauer 2009): 1 (easy) to 10 (hard)."""
    return float(sascorer.calculateScore(to_mol(molecule)))


def _largest_cycle(mol: Chem.Mol) -> int:
    graph = nx.Graph([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()])
    return max((len(cycle) for cycle in nx.cycle_basis(graph)), default=0)


def penalized_logp(molecule: str | Chem.Mol) -> float:
    """Penalised logP, JT-VAE definition (standardised with ZINC-250k statistics)."""
    mol = to_mol(molecule)
    log_p = Crippen.MolLogP(mol)
    sa = -sascorer.calculateScore(mol)
    cycle = -max(0, _largest_cycle(mol) - 6)
    return float(
        (log_p - _LOGP_MEAN) / _LOGP_STD
        + (sa - _SA_MEAN) / _SA_STD
        + (cycle - _CYCLE_MEAN) / _CYCLE_STD
    )


def compute_descriptors(molecule: str | Chem.Mol) -> MolecularDescriptors:
    """All descriptors of one molecule.

    Raises:
        ParseError: unparsable input.
        UnsupportedElementError: an element outside the organic set (e.g. a metal complex).
    """
    mol = to_mol(molecule)
    check_elements(
        mol, ORGANIC_ELEMENTS, describe_input(molecule if isinstance(molecule, str) else mol_to_smiles(mol))
    )
    mol = Chem.RemoveHs(mol)
    mw = Descriptors.MolWt(mol)
    clogp = Crippen.MolLogP(mol)
    hba = rdMolDescriptors.CalcNumHBA(mol)
    hbd = rdMolDescriptors.CalcNumHBD(mol)
    violations = sum((mw > 500, clogp > 5, hbd > 5, hba > 10))
    pains = _alerts(mol, "pains")
    brenk = _alerts(mol, "brenk")
    return MolecularDescriptors(
        molecular_weight_da=mw,
        clogp=clogp,
        tpsa_a2=rdMolDescriptors.CalcTPSA(mol),
        hba=hba,
        hbd=hbd,
        rotatable_bonds=rdMolDescriptors.CalcNumRotatableBonds(mol),
        heavy_atoms=mol.GetNumHeavyAtoms(),
        rings=rdMolDescriptors.CalcNumRings(mol),
        aromatic_rings=rdMolDescriptors.CalcNumAromaticRings(mol),
        fraction_csp3=rdMolDescriptors.CalcFractionCSP3(mol),
        qed=QED.qed(mol),
        sa_score=float(sascorer.calculateScore(mol)),
        penalized_logp=penalized_logp(mol),
        lipinski_violations=violations,
        passes_lipinski=violations <= 1,
        n_pains_alerts=len(pains),
        pains_alerts="; ".join(pains),
        n_brenk_alerts=len(brenk),
        brenk_alerts="; ".join(brenk),
    )


def describe(
    molecules: pd.DataFrame | Iterable[str | Chem.Mol | None] | str | Chem.Mol,
    *,
    mol_column: str = "mol",
) -> pd.DataFrame:
    """Descriptors for a batch: the input's columns plus one column per descriptor.

    Args:
        molecules: SMILES/Mols, or a DataFrame with a `mol_column` (or ``smiles``) column,
            e.g. the output of `molops.io.read_molecules`.

    Returns:
        DataFrame with the input columns, the `MolecularDescriptors` fields and ``error``;
        rows that fail get None descriptors and the reason in ``error``.
    """
    frame, mol_column = molecule_frame(molecules, mol_column)
    return apply_rows(frame, lambda m: asdict(compute_descriptors(m)), DESCRIPTOR_COLUMNS, mol_column)
