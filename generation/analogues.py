"""One-step analogues of a molecule: single-atom edits, as a medicinal chemist's first ideas.

The language-guided editor scores those within its similarity floor as candidate edits and
adds them to its exemplar database: the retrieval step of the RetMol loop then has exemplars a
single atom away from the input that already move a property the requested way (e.g. an extra
donor), which MOSES alone often lacks within a similarity floor of 0.6. The edits are those of graph-based genetic algorithms
(Jensen 2019, GB-GA), enumerated exhaustively instead of sampled:

- replace a heavy atom's element (C, N, O, S; F, Cl, Br on terminal atoms), aromatic ring
  atoms included (CH → N);
- attach C, N, O, F or Cl by a single bond to an atom carrying a hydrogen;
- delete a terminal heavy atom.

Products must sanitise, stay neutral and connected, give edited atoms their usual valence
(no hypervalent S or N made by an edit) and make no peroxide-like (O–O),
heteroatom–halogen or acyl-halide bond; stereo tags of edited atoms are dropped.
"""

from __future__ import annotations

from rdkit import Chem, RDLogger

__all__ = ["one_step_analogues"]

_RING_OR_CHAIN_ELEMENTS = (6, 7, 8, 16)
_TERMINAL_ELEMENTS = (6, 7, 8, 9, 16, 17, 35)
_ATTACHED_ELEMENTS = (6, 7, 8, 9, 17)
_USUAL_VALENCE = {6: 4, 7: 3, 8: 2, 9: 1, 16: 2, 17: 1, 35: 1}
_HETEROATOMS = {7, 8, 16}
_HALOGENS = {9, 17, 35}


def _unusual(molecule: Chem.Mol, edited_atoms: tuple[int, ...]) -> bool:
    """True when an edited atom has an unusual valence or makes an O–O, heteroatom–halogen or acyl-halide bond."""
    for index in edited_atoms:
        atom = molecule.GetAtomWithIdx(index)
        if atom.GetTotalValence() != _USUAL_VALENCE.get(atom.GetAtomicNum(), -1):
            return True
        for neighbour in atom.GetNeighbors():
            pair = {atom.GetAtomicNum(), neighbour.GetAtomicNum()}
            if pair == {8} or (pair & _HETEROATOMS and pair & _HALOGENS):
                return True
            if atom.GetAtomicNum() in _HALOGENS and _has_double_bond_to_heteroatom(neighbour):
                return True  # acyl halide and relatives: reactive, not a medicinal-chemistry edit
    return False


def _has_double_bond_to_heteroatom(atom: Chem.Atom) -> bool:
    return any(bond.GetBondType() == Chem.BondType.DOUBLE and bond.GetOtherAtom(atom).GetAtomicNum() in _HETEROATOMS
               for bond in atom.GetBonds())


def _finish(edited: Chem.RWMol, edited_atoms: tuple[int, ...] = ()) -> str | None:
    """Canonical SMILES of an edited (kekulised) molecule, or None when it is not a valid,
    neutral, single molecule with usual chemistry at `edited_atoms`."""
    try:
        molecule = edited.GetMol()
        Chem.SanitizeMol(molecule)
    except Exception:  # noqa: BLE001 - RDKit raises several types for invalid valences/aromaticity
        return None
    if any(atom.GetFormalCharge() for atom in molecule.GetAtoms()) or _unusual(molecule, edited_atoms):
        return None
    smiles = Chem.MolToSmiles(molecule)
    return None if "." in smiles else smiles


def one_step_analogues(smiles: str, *, max_heavy_atoms: int = 60) -> list[str]:
    """Canonical SMILES of every molecule one atom edit away from `smiles` (itself excluded).

    Args:
        smiles: the input molecule.
        max_heavy_atoms: larger inputs give no analogues (single-atom edits mean little for
            macromolecules).

    Returns:
        Sorted unique SMILES (a few hundred for a drug-sized molecule).

    Raises:
        ValueError: `smiles` cannot be parsed.
    """
    molecule = Chem.MolFromSmiles(smiles)
    if molecule is None:
        raise ValueError(f"one_step_analogues: cannot parse SMILES {smiles!r}")
    if molecule.GetNumAtoms() > max_heavy_atoms:
        return []
    own = Chem.MolToSmiles(molecule)
    base = Chem.RWMol(molecule)
    Chem.Kekulize(base, clearAromaticFlags=True)  # edits on explicit single/double bonds; sanitising re-aromatises
    found: set[str] = set()
    RDLogger.DisableLog("rdApp.*")
    try:
        for atom in base.GetAtoms():
            index, element, terminal = atom.GetIdx(), atom.GetAtomicNum(), atom.GetDegree() == 1
            for new_element in _TERMINAL_ELEMENTS if terminal else _RING_OR_CHAIN_ELEMENTS:
                if new_element == element:
                    continue
                edited = Chem.RWMol(base)
                target = edited.GetAtomWithIdx(index)
                target.SetAtomicNum(new_element)
                target.SetNumExplicitHs(0)
                target.SetNoImplicit(False)
                target.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
                found.add(_finish(edited, (index,)))
            if atom.GetTotalNumHs() > 0:
                for new_element in _ATTACHED_ELEMENTS:
                    edited = Chem.RWMol(base)
                    target = edited.GetAtomWithIdx(index)
                    target.SetNumExplicitHs(0)  # e.g. [nH]: the new bond takes the hydrogen's place
                    target.SetNoImplicit(False)
                    added = edited.AddAtom(Chem.Atom(new_element))
                    edited.AddBond(index, added, Chem.BondType.SINGLE)
                    found.add(_finish(edited, (added,)))
            if terminal and base.GetNumAtoms() > 2:
                edited = Chem.RWMol(base)
                neighbour = edited.GetAtomWithIdx(atom.GetNeighbors()[0].GetIdx())
                neighbour.SetNumExplicitHs(0)
                neighbour.SetNoImplicit(False)
                edited.RemoveAtom(index)
                found.add(_finish(edited))
    finally:
        RDLogger.EnableLog("rdApp.*")
    found.discard(None)
    found.discard(own)
    return sorted(found)
