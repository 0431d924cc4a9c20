"""Conformer ranking vs the DFT reference labels, side by side in one run.

Held-out molecules: the test part of `conformer_training.split_labels` with the split of
quantum_features/configs/conformers.yaml (a stable hash of each molecule id: test molecules
are used neither for training nor for early stopping), among the structures that config trains
on (its ``n_structures``: the label file may have grown since the shipped model was trained). For their MMFF94 conformers (the
"conformer" structures; distorted ones only enter the force errors), each method's energies
are compared with the reference labels: median over molecules (≥ 3 conformers) of R² of
relative energies (each set centred on its mean), Spearman ρ, MAE (kcal/mol), and CPU time
(process time, all threads) per conformer, energy only (all that ranking needs; the speed-up
compares it with the reference's energy-only single points) and with forces:

1. this project's model (cheap HF/STO-3G/df calculation + network; ``--model`` files or the
   shipped conformer ensemble);
2. MMFF94 (RDKit) single points on the same geometries;
3. GFN2-xTB (tblite) single points;
4. the cheap PySCF level alone (HF/STO-3G with density fitting), and the same plus the reference
   functional's D3(BJ) dispersion (the fixed physics term of the conformer model, see
   `quantum_features.dispersion`), which shows how much of the model's result that term gives;
5. the reference level itself (energy-only single points on ``--reference-timing`` conformers,
   timed here; its energies are the labels).

Forces (all held-out structures): MAE vs the DFT forces for the model, the cheap level and
GFN2-xTB, in kcal/mol/Å. The ranking metrics are repeated for the held-out molecules with F (the
rarest element of the training molecules). Writes benchmarks/results/conformer_ranking.md and,
per structure (energies in Hartree, CPU seconds), conformer_ranking.csv beside it.

Run:  .venv/bin/python benchmarks/conformer_ranking.py [--model benchmarks/checkpoints/conformers/best.pt] [--reference-timing 3]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from molops.io import to_mol
from quantum_features.calculator import ensemble_energy_and_forces, load_conformer_models
from quantum_features.conformer_training import (
    HARTREE_TO_KCAL,
    ConformerTrainConfig,
    conformer_metrics,
    split_labels,
    training_labels,
)
from quantum_features.dispersion import dispersion_energy_and_gradient
from quantum_features.features import featurize
from quantum_features.levels import DEFAULT_LEVEL
from quantum_features.predict import split_refused_molecules

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "conformer_ranking.md"
BOHR = 0.529177210903
KCAL_PER_HARTREE = HARTREE_TO_KCAL
DISPERSION = "b3lyp-d3bj"  # the reference level's own dispersion correction


def mmff_energy(smiles: str, numbers: np.ndarray, positions: np.ndarray) -> float:
    """MMFF94 energy (kcal/mol) at the given geometry; the atom order must be RDKit's
    AddHs order of the SMILES (as in molops.conformers, which made the structures)."""
    mol = Chem.AddHs(to_mol(smiles))
    if [a.GetAtomicNum() for a in mol.GetAtoms()] != list(numbers):
        raise ValueError("atom order differs from the SMILES")
    conformer = Chem.Conformer(mol.GetNumAtoms())
    for i, xyz in enumerate(positions):
        conformer.SetAtomPosition(i, xyz.tolist())
    mol.AddConformer(conformer, assignId=True)
    properties = AllChem.MMFFGetMoleculeProperties(mol)
    return AllChem.MMFFGetMoleculeForceField(mol, properties).CalcEnergy()


def xtb(numbers: np.ndarray, positions: np.ndarray, charge: int, multiplicity: int) -> tuple[float, np.ndarray]:
    """GFN2-xTB energy (Hartree) and gradient (Hartree/Å) with tblite."""
    from tblite.interface import Calculator

    calc = Calculator("GFN2-xTB", numbers, positions / BOHR, charge=charge, uhf=multiplicity - 1)
    calc.set("verbosity", 0)
    result = calc.singlepoint()
    return float(result.get("energy")), np.asarray(result.get("gradient")) / BOHR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=Path, default=ROOT / "quantum_features" / "data" / "conformer_labels.npz")
    parser.add_argument("--model", type=Path, nargs="*", default=None)
    parser.add_argument("--reference-timing", type=int, default=3, help="reference single points timed in this run")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--config", type=Path, default=ROOT / "quantum_features" / "configs" / "conformers.yaml",
                        help="training config whose test split is evaluated")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    split = ConformerTrainConfig.from_file(args.config)
    split.labels = str(args.labels)
    labels = training_labels(split)
    _, _, held_out = split_labels(labels, split.test_fraction, split.val_fraction, split.split_seed)
    models = load_conformer_models(args.model or None)
    # Molecules with elements the model was not fine-tuned on are refused by it (as by
    # rank_conformers); every method is compared on the remaining molecules.
    held_out, refused = split_refused_molecules(models, held_out)
    for reason in refused.values():
        print(f"left out: {reason}")
    rows, force_rows = [], []
    for i in range(len(held_out)):
        row = held_out.frame.iloc[i]
        atoms = held_out.atoms(i)
        record = {"molecule": row["molecule_id"], "kind": row["kind"], "reference_hartree": row["energy_hartree"],
                  "has_fluorine": bool((atoms.numbers == 9).any())}
        # Ranking needs energies only (as rank_conformers): cheap SCF without gradient + network.
        start = time.process_time()
        features = featurize(atoms, gradient=False)
        record["cheap_seconds"] = time.process_time() - start
        energies, _ = ensemble_energy_and_forces(models, features, forces=False)
        record["model_seconds"] = time.process_time() - start
        record["model"] = float(energies.mean())
        # Forces: cheap analytic gradient + autograd of the network (as OrbNetCalculator).
        start = time.process_time()
        features = featurize(atoms, gradient=True)
        record["cheap_forces_seconds"] = time.process_time() - start
        _, model_forces = ensemble_energy_and_forces(models, features, forces=True)
        record["model_forces_seconds"] = time.process_time() - start
        record["cheap"] = features.energy_hartree
        start = time.process_time()
        dispersion, dispersion_gradient = dispersion_energy_and_gradient(atoms.numbers, atoms.positions, DISPERSION)
        record["cheap_d3"] = features.energy_hartree + dispersion
        record["cheap_d3_seconds"] = record["cheap_seconds"] + time.process_time() - start
        try:
            start = time.process_time()
            record["mmff"] = mmff_energy(row["smiles"], atoms.numbers, atoms.positions) / KCAL_PER_HARTREE
            record["mmff_seconds"] = time.process_time() - start
        except Exception as exc:  # noqa: BLE001 - reported, the molecule drops out of the MMFF column
            print(f"MMFF94 {row['key']}: {exc}")
            record["mmff"] = np.nan
        start = time.process_time()
        xtb_energy, xtb_gradient = xtb(atoms.numbers, atoms.positions, int(row["charge"]), int(row["multiplicity"]))
        record["xtb_seconds"] = record["xtb_forces_seconds"] = time.process_time() - start  # tblite always returns the gradient
        record["xtb"] = xtb_energy
        rows.append(record)
        truth = held_out.forces[i]
        force_rows.append({
            "model": np.abs(model_forces - truth).mean(),
            "cheap": np.abs(-features.gradient_hartree_per_angstrom - truth).mean(),
            "cheap_d3": np.abs(-features.gradient_hartree_per_angstrom - dispersion_gradient - truth).mean(),
            "xtb": np.abs(-xtb_gradient - truth).mean(),
            "n": truth.size,
        })
    frame = pd.DataFrame(rows)
    conformers = frame[frame["kind"] == "conformer"]

    from quantum_features.calc import CheapCalculation

    reference_seconds = []
    for i in list(np.flatnonzero(held_out.frame["kind"] == "conformer"))[: args.reference_timing]:
        start = time.process_time()
        CheapCalculation(held_out.atoms(int(i)), level=labels.level, conv_tol=1e-9).run()
        reference_seconds.append(time.process_time() - start)
    reference_time = float(np.mean(reference_seconds)) if reference_seconds else float("nan")

    forces = pd.DataFrame(force_rows)
    table = ["| method | median R² | median Spearman ρ | MAE relative (kcal/mol) | CPU s / conformer (energy) | "
             "speed-up vs reference | CPU s with forces | force MAE (kcal/mol/Å) |", "|---|---|---|---|---|---|---|---|"]
    methods = [("this model (HF/STO-3G/df + network)", "model"), ("MMFF94 (RDKit)", "mmff"),
               ("GFN2-xTB (tblite)", "xtb"), (f"cheap level alone ({DEFAULT_LEVEL})", "cheap"),
               (f"cheap level + {DISPERSION.upper()} dispersion (no network)", "cheap_d3")]
    for label, column in methods:
        metrics = conformer_metrics(conformers.dropna(subset=[column]), column)
        seconds = conformers[f"{column}_seconds"].mean() if f"{column}_seconds" in conformers else np.nan
        with_forces = conformers[f"{column}_forces_seconds"].mean() if f"{column}_forces_seconds" in conformers else np.nan
        force = (forces[column] * forces["n"]).sum() / forces["n"].sum() * KCAL_PER_HARTREE if column in forces else np.nan
        table.append(f"| {label} | {metrics['median_r2']:.3f} | {metrics['median_spearman']:.3f} | "
                     f"{metrics['relative_mae_kcal_mol']:.2f} | {seconds:.3f} | {reference_time / seconds:.0f}x | "
                     f"{'' if np.isnan(with_forces) else f'{with_forces:.3f}'} | {'' if np.isnan(force) else f'{force:.2f}'} |")
    table.append(f"| reference {labels.level} (the labels) | 1 | 1 | 0 | {reference_time:.1f} | 1x | | 0 |")
    # F entered the training molecules last and is the rarest element there: its molecules are
    # reported apart, so that a good median elsewhere does not hide how they fare.
    subset = conformers[conformers["has_fluorine"]]
    n_fluorine = conformer_metrics(subset, "model")["n_molecules"] if len(subset) else 0
    if n_fluorine:
        table += ["", f"Of these, the {n_fluorine} molecule(s) with F (conformer ranking only):", "",
                  "| method | median R² | median Spearman ρ | MAE relative (kcal/mol) |", "|---|---|---|---|"]
        for label, column in methods:
            metrics = conformer_metrics(subset.dropna(subset=[column]), column)
            table.append(f"| {label} | {metrics['median_r2']:.3f} | {metrics['median_spearman']:.3f} | "
                         f"{metrics['relative_mae_kcal_mol']:.2f} |")
    n_molecules = conformer_metrics(conformers, "model")["n_molecules"]
    text = "\n".join([
        "# Conformer ranking vs DFT labels (held-out molecules)", "",
        f"Command: `.venv/bin/python {shlex.join(['benchmarks/conformer_ranking.py', *sys.argv[1:]])}` — labels `{args.labels.name}` at {labels.level}; "
        f"{held_out.frame['molecule_id'].nunique()} held-out molecules ({n_molecules} with ≥ 3 conformers), "
        f"{len(conformers)} conformers, {len(frame)} structures for forces; CPU time = process time on this machine "
        f"({torch.get_num_threads()} torch threads); reference timing over {len(reference_seconds)} energy-only single points; "
        "the speed-up compares energy-only calculations (all that ranking needs, as `rank_conformers`).", "",
        *([f"Left out ({len(refused)} held-out molecule(s) with elements the model was not fine-tuned on, which it "
           "refuses, so every method is compared on the rest): " + "; ".join(refused.values()), ""] if refused else []),
        "Forces of the model: analytic HF/STO-3G gradient + autograd of the network with the orbital features held "
        "fixed (`OrbNetCalculator`).", "",
        *table, "",
    ])
    print(text)
    RESULTS.write_text(text)
    frame.to_csv(RESULTS.with_suffix(".csv"), index=False)  # per structure: energies (Hartree), timings (s)


if __name__ == "__main__":
    main()
