"""Standardisation with RDKit's MolStandardize: the same molecule always gets the same record.

Steps (each optional, in this order): cleanup (normalise functional groups such as nitro and
N-oxides, reionise), keep the largest organic fragment (drops counter-ions and solvents),
neutralise charges where a neutral form exists, pick RDKit's canonical tautomer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from rdkit import Chem
from rdkit.Chem.MolStandardize import rdMolStandardize

from molops.errors import MoleculeError, describe_input
from molops.io import ORGANIC_ELEMENTS, check_elements, mol_to_smiles, rdkit_errors, to_mol
from molops.table import apply_rows, molecule_frame

__all__ = ["standardize", "canonical_smiles", "inchikey", "standardize_frame", "StandardizeOptions"]


@dataclass(frozen=True)
class StandardizeOptions:
    """Which standardisation steps to run.

    Elements outside `allowed_elements` are accepted only as single-atom fragments
    (counter-ions such as Na+ or Mg2+, which the largest-fragment step removes); a metal bonded
    to the molecule (a complex such as cisplatin) is rejected instead of being disconnected.

    `max_tautomers` bounds RDKit's tautomer enumeration, which grows combinatorially on
    large, heavily conjugated molecules.
    """

    allowed_elements: frozenset[str] = ORGANIC_ELEMENTS
    cleanup: bool = True
    largest_fragment: bool = True
    neutralize: bool = True
    canonical_tautomer: bool = True
    max_tautomers: int = 1000


def _tautomer_enumerator(max_tautomers: int) -> rdMolStandardize.TautomerEnumerator:
    params = rdMolStandardize.CleanupParameters()
    params.maxTautomers = max_tautomers
    return rdMolStandardize.TautomerEnumerator(params)


def _check_bonded_elements(mol: Chem.Mol, allowed: frozenset[str], label: str) -> Chem.Mol:
    """Reject unsupported elements bonded into a fragment; lone ions are counter-ions."""
    for fragment in Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False):
        if fragment.GetNumAtoms() > 1:
            check_elements(fragment, allowed, label)
    return mol


def standardize(
    molecule: str | Chem.Mol, options: StandardizeOptions = StandardizeOptions()
) -> Chem.Mol:
    """Return the standardised parent molecule of `molecule` (SMILES or Mol).

    Raises:
        ParseError: the input cannot be parsed.
        UnsupportedElementError: an unsupported element bonded into a fragment, or a parent
            that is only an unsupported ion (e.g. "[Na+]").
        MoleculeError: a standardisation step fails (the message names the step).
    """
    mol = to_mol(molecule)
    label = describe_input(molecule if isinstance(molecule, str) else mol_to_smiles(mol))
    _check_bonded_elements(mol, options.allowed_elements, label)
    steps = []
    if options.cleanup:
        steps.append(("cleanup", rdMolStandardize.Cleanup))
    if options.largest_fragment:
        # Prefer organic fragments: a salt's metal counter-ion is never the parent.
        chooser = rdMolStandardize.LargestFragmentChooser(preferOrganic=True)
        steps.append(("largest fragment", chooser.choose))
    if options.neutralize:
        steps.append(("neutralise", rdMolStandardize.Uncharger().uncharge))
    if options.canonical_tautomer:
        steps.append(("canonical tautomer", _tautomer_enumerator(options.max_tautomers).Canonicalize))
    for step_name, step in steps:
        try:
            with rdkit_errors() as log:
                result = step(mol)
        except (ValueError, RuntimeError) as exc:
            raise MoleculeError(f"{label}: standardisation step '{step_name}' failed: {exc}") from None
        if result is None:
            raise MoleculeError(
                f"{label}: standardisation step '{step_name}' failed: {log.reason()}"
            )
        mol = result
    if options.largest_fragment:
        # The parent itself must be supported: "[Na+]" alone has no organic fragment to keep.
        check_elements(mol, options.allowed_elements, label)
    return _check_bonded_elements(mol, options.allowed_elements, label)


def canonical_smiles(molecule: str | Chem.Mol, *, standardized: bool = False) -> str:
    """Canonical isomeric SMILES; with ``standardized=True``, of the standardised parent."""
    mol = standardize(molecule) if standardized else to_mol(molecule)
    return Chem.MolToSmiles(mol)


def inchikey(molecule: str | Chem.Mol) -> str:
    """Standard InChIKey of `molecule`.

    Raises:
        MoleculeError: RDKit's InChI code cannot produce a key for the molecule.
    """
    mol = to_mol(molecule)
    with rdkit_errors() as log:
        key = Chem.MolToInchiKey(mol)
    if not key:
        raise MoleculeError(f"{describe_input(mol_to_smiles(mol))}: no InChIKey: {log.reason()}")
    return key


def standardize_frame(
    molecules: pd.DataFrame | Iterable[str | Chem.Mol],
    *,
    mol_column: str = "mol",
    options: StandardizeOptions = StandardizeOptions(),
) -> pd.DataFrame:
    """Standardise a batch; failures are recorded per row, never raised.

    Args:
        molecules: a DataFrame with a `mol_column` (Mol or SMILES) or a ``smiles`` column,
            or an iterable of SMILES/Mols. Rows that already carry an ``error`` keep it.

    Returns:
        A copy of the input with `mol_column` replaced by the standardised parent and columns
        ``std_smiles``, ``inchikey`` and ``error`` (None where the row succeeded).
    """

    def one(value: str | Chem.Mol) -> dict[str, object]:
        parent = standardize(value, options)
        return {mol_column: parent, "std_smiles": Chem.MolToSmiles(parent), "inchikey": inchikey(parent)}

    frame, source = molecule_frame(molecules, mol_column)
    return apply_rows(frame, one, [mol_column, "std_smiles", "inchikey"], source)
