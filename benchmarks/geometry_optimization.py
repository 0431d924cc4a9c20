"""Geometry optimisation vs DFT-optimised structures: this model, MMFF94 and GFN2-xTB.

For each molecule (melatonin and other drug-like molecules), all methods start from the same
lowest MMFF94 conformer (ETKDGv3, seed 42):

- reference: BFGS (ASE) on the reference DFT level's analytic forces
  (B3LYP-D3(BJ)/def2-SVP/df, PySCF) to fmax 0.05 eV/Å. Expensive on CPU (minutes per step for
  melatonin), so every step is appended to benchmarks/results/geometry_reference/<name>.traj
  and an interrupted optimisation resumes from its last frame (``--max-minutes`` bounds one
  sitting; the finished geometry is written as <name>.xyz and reused by later runs);
- this model: `quantum_features.calculator.optimize_geometry` (BFGS, fmax 0.05 eV/Å);
- MMFF94: RDKit's minimiser (the start is already an MMFF94 minimum: the row measures how far
  the force field's minimum is from DFT's);
- GFN2-xTB: tblite's ASE calculator with BFGS (fmax 0.05 eV/Å).

Reported: heavy-atom RMSD (Å, symmetry-aware best alignment, RDKit) to the DFT geometry and
the wall time of each optimisation, with the ratio to the DFT optimisation's time.

Run:  .venv/bin/python benchmarks/geometry_optimization.py [--max-minutes 60] [--model FILE ...]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.io import Trajectory, read, write
from ase.optimize import BFGS
from ase.units import Hartree
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign

from molops.conformers import generate_conformers
from quantum_features.levels import REFERENCE_LEVEL

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REFERENCE_DIR = RESULTS / "geometry_reference"
FMAX = 0.05  # eV/Å

MOLECULES = {
    "melatonin": "COc1ccc2[nH]cc(CCNC(C)=O)c2c1",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "caffeine": "Cn1c(=O)c2c(ncn2C)n(C)c1=O",
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "nicotine": "CN1CCCC1c1cccnc1",
    "ibuprofen": "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
}


class ReferenceDFT(Calculator):
    """ASE calculator on the reference level (energy eV, forces eV/Å), via CheapCalculation."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, level: str = REFERENCE_LEVEL) -> None:
        super().__init__()
        self.level = level

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        from quantum_features.calc import CheapCalculation

        super().calculate(atoms, properties, system_changes)
        structure = self.atoms.copy()
        structure.info.update(charge=0, multiplicity=1)
        calc = CheapCalculation(structure, level=self.level, gradient=True, conv_tol=1e-9, device="auto").run()
        self.results["energy"] = calc.e_tot * Hartree
        self.results["forces"] = -calc.gradient * Hartree


def start_structure(smiles: str) -> tuple[Chem.Mol, Atoms]:
    ensemble = generate_conformers(smiles, n_conformers=1, seed=42)
    return Chem.Mol(ensemble.mol), ensemble.to_atoms(0)


def heavy_rmsd(mol: Chem.Mol, a: np.ndarray, b: np.ndarray) -> float:
    """Symmetry-aware heavy-atom RMSD (Å) between two geometries of `mol`'s atoms."""
    def with_positions(positions: np.ndarray) -> Chem.Mol:
        copy = Chem.Mol(mol)
        conformer = copy.GetConformer()
        for i, xyz in enumerate(positions):
            conformer.SetAtomPosition(i, xyz.tolist())
        return Chem.RemoveHs(copy)

    return rdMolAlign.GetBestRMS(with_positions(a), with_positions(b))


def reference_geometry(name: str, atoms: Atoms, deadline: float, level: str) -> tuple[np.ndarray | None, float]:
    """(DFT-optimised positions or None if unfinished, seconds spent in total)."""
    directory = REFERENCE_DIR if level == REFERENCE_LEVEL else REFERENCE_DIR.with_name(
        "geometry_reference_" + level.replace("/", "_"))
    directory.mkdir(parents=True, exist_ok=True)
    done, traj_path, seconds_path = (directory / f"{name}.xyz", directory / f"{name}.traj", directory / f"{name}.seconds")
    spent = float(seconds_path.read_text()) if seconds_path.exists() else 0.0
    if done.exists():
        return read(done).positions, spent
    if time.perf_counter() > deadline:  # no budget left this run: not even one (expensive) gradient
        return None, spent
    current = atoms.copy()
    if traj_path.exists() and len(Trajectory(traj_path)):
        current.positions = Trajectory(traj_path)[-1].positions  # resume from the last step
    current.calc = ReferenceDFT(level)
    # The BFGS state (Hessian estimate) is saved every step, so a resumed run continues with it
    # instead of restarting from the initial guess (which would cost extra DFT gradients).
    optimizer = BFGS(current, logfile=str(directory / f"{name}.log"), trajectory=str(traj_path),
                     append_trajectory=True, restart=str(directory / f"{name}.bfgs.json"))
    start = time.perf_counter()
    converged = False
    for converged in optimizer.irun(fmax=FMAX, steps=500):
        elapsed = time.perf_counter() - start
        seconds_path.write_text(f"{spent + elapsed:.1f}")
        if converged or time.perf_counter() > deadline:
            break
    spent += time.perf_counter() - start
    seconds_path.write_text(f"{spent:.1f}")
    if converged:
        write(done, current)
        return current.positions.copy(), spent
    return None, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-minutes", type=float, default=60.0, help="budget for reference DFT steps this run")
    parser.add_argument("--model", type=Path, nargs="*", default=None)
    parser.add_argument("--molecules", nargs="*", default=list(MOLECULES))
    parser.add_argument("--reference-only", action="store_true",
                        help="only run (or resume) the reference DFT optimisations; no model needed")
    parser.add_argument("--level", default=REFERENCE_LEVEL, help="reference level (a cheaper one only for smoke tests)")
    args = parser.parse_args()
    deadline = time.perf_counter() + 60 * args.max_minutes
    # Phase 1: the reference optimisations (the expensive, resumable part; no model needed).
    finished = {}
    for name in args.molecules:
        mol, start = start_structure(MOLECULES[name])
        reference, dft_seconds = reference_geometry(name, start, deadline, args.level)
        if reference is None:
            print(f"{name}: reference DFT optimisation unfinished ({dft_seconds / 60:.0f} min so far); rerun to resume")
        else:
            print(f"{name}: reference DFT geometry ready ({dft_seconds / 60:.0f} min)", flush=True)
            finished[name] = (mol, start, reference, dft_seconds)
    if args.reference_only or not finished:
        return
    # Phase 2: every method from the same start, against the finished references.
    from quantum_features.calculator import load_conformer_models, optimize_geometry

    models = load_conformer_models(args.model or None)
    rows = []
    for name, (mol, start, reference, dft_seconds) in finished.items():
        row = {"molecule": name, "heavy_atoms": mol.GetNumHeavyAtoms(), "dft_seconds": dft_seconds,
               "start_rmsd": heavy_rmsd(mol, start.positions, reference)}

        tick = time.perf_counter()
        relaxed, _ = optimize_geometry(start, models=models, fmax=FMAX, steps=300)
        row.update(model_rmsd=heavy_rmsd(mol, relaxed.positions, reference), model_seconds=time.perf_counter() - tick)

        tick = time.perf_counter()
        mmff = Chem.Mol(mol)
        AllChem.MMFFOptimizeMolecule(mmff, maxIters=2000)
        row.update(mmff_rmsd=heavy_rmsd(mol, mmff.GetConformer().GetPositions(), reference),
                   mmff_seconds=time.perf_counter() - tick)

        from tblite.ase import TBLite

        tick = time.perf_counter()
        xtb_atoms = start.copy()
        xtb_atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
        BFGS(xtb_atoms, logfile=None).run(fmax=FMAX, steps=500)
        row.update(xtb_rmsd=heavy_rmsd(mol, xtb_atoms.positions, reference), xtb_seconds=time.perf_counter() - tick)
        rows.append(row)
        print(row, flush=True)
    if not rows:
        return
    frame = pd.DataFrame(rows)
    lines = ["# Geometry optimisation vs DFT (B3LYP-D3(BJ)/def2-SVP) minima", "",
             f"Command: `.venv/bin/python {shlex.join(['benchmarks/geometry_optimization.py', *sys.argv[1:]])}` — "
             "all from the lowest MMFF94 conformer; "
             f"BFGS to fmax {FMAX} eV/Å; heavy-atom RMSD (Å, symmetry-aware) to the DFT-optimised geometry; wall time on this machine.", "",
             "| molecule | heavy atoms | start (MMFF94 conformer) RMSD | this model RMSD | MMFF94 RMSD | GFN2-xTB RMSD | "
             "DFT time (s) | model time (s, ratio) | GFN2-xTB time (s, ratio) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['molecule']} | {r['heavy_atoms']} | {r['start_rmsd']:.3f} | {r['model_rmsd']:.3f} | "
                     f"{r['mmff_rmsd']:.3f} | {r['xtb_rmsd']:.3f} | {r['dft_seconds']:.0f} | "
                     f"{r['model_seconds']:.0f} ({r['dft_seconds'] / r['model_seconds']:.0f}x faster) | "
                     f"{r['xtb_seconds']:.1f} ({r['dft_seconds'] / r['xtb_seconds']:.0f}x faster) |")
    unfinished = [name for name in args.molecules if name not in finished]
    if unfinished:
        lines += ["", f"Reference DFT optimisations not finished yet (resumable): {', '.join(unfinished)}."]
    lines += ["", f"Mean RMSD: model {frame['model_rmsd'].mean():.3f}, MMFF94 {frame['mmff_rmsd'].mean():.3f}, "
              f"GFN2-xTB {frame['xtb_rmsd'].mean():.3f} Å over {len(frame)} molecules."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.level == REFERENCE_LEVEL:
        (RESULTS / "geometry_optimization.md").write_text(text)


if __name__ == "__main__":
    main()
