"""Orbital featurisation vs a B3LYP/def2-SVP single point, and the QM9 featurisation rate.

Part 1 (drug-sized molecules, 21-40 atoms): for each molecule, one MMFF94 geometry is used
for every method, in one run on this machine:
- molops featurisation (`quantum_features.featurize`: HF/STO-3G with density fitting, AO
  matrices, irreps features), without and with the analytic gradient;
- B3LYP/def2-SVP single point with PySCF defaults (the baseline named in the issue).
The speed-up is B3LYP time / featurisation time.

Part 2 (QM9 rate): featurise the first N QM9 training molecules (`qm9_subset`) into an HDF5 cache with the
Dask map (LocalCluster, one worker per core) and print molecules per second and the time
10,000 molecules take at that rate.

Run:  .venv/bin/python benchmarks/featurize_speed.py [--skip-baseline] [--qm9 N [--keep FILE.h5]]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pyscf import dft

from quantum_features.calc import CheapCalculation, prepare_atoms
from quantum_features.datasets import featurize_many, load_qm9, qm9_atoms, qm9_subset
from quantum_features.features import featurize

RESULTS = Path(__file__).parent / "results" / "featurize_speed.md"

MOLECULES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "caffeine": "Cn1c(=O)c2c(ncn2C)n(C)c1=O",
    "melatonin": "COc1ccc2[nH]cc(CCNC(C)=O)c2c1",
    "ibuprofen": "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "chlorpromazine": "CN(C)CCCN1c2ccccc2Sc2ccc(Cl)cc21",
    "celecoxib": "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1",
}


def b3lyp_seconds(atoms) -> tuple[float, float]:
    mol = CheapCalculation(atoms, level="b3lyp/def2-svp").build_mole()
    start = time.perf_counter()
    mf = dft.RKS(mol, xc="b3lyp")
    energy = mf.kernel()
    if not mf.converged:
        raise RuntimeError("B3LYP did not converge")
    return time.perf_counter() - start, energy


def drug_table(skip_baseline: bool) -> list[str]:
    lines = [
        "| molecule | atoms | featurise (s) | featurise + gradient (s) | B3LYP/def2-SVP (s) | speed-up | speed-up with gradient |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    featurize("CCO")  # warm-up: imports, basis parsing
    totals = [0.0, 0.0, 0.0]
    for name, smiles in MOLECULES.items():
        atoms = prepare_atoms(smiles, seed=7)
        start = time.perf_counter()
        featurize(atoms)
        feat = time.perf_counter() - start
        start = time.perf_counter()
        featurize(atoms, gradient=True)
        feat_grad = time.perf_counter() - start
        ref = b3lyp_seconds(atoms)[0] if not skip_baseline else float("nan")
        totals = [totals[0] + feat, totals[1] + feat_grad, totals[2] + ref]
        lines.append(
            f"| {name} | {len(atoms)} | {feat:.2f} | {feat_grad:.2f} | {ref:.1f} | "
            f"{ref / feat:.0f}x | {ref / feat_grad:.0f}x |"
        )
        print(lines[-1], flush=True)
    lines.append(
        f"| **total** | | {totals[0]:.2f} | {totals[1]:.2f} | {totals[2]:.1f} | "
        f"{totals[2] / totals[0]:.0f}x | {totals[2] / totals[1]:.0f}x |"
    )
    return lines


def qm9_rate(n: int, keep: Path | None) -> list[str]:
    frame = load_qm9()
    train = frame.loc[qm9_subset("train", n)]
    atoms = [qm9_atoms(row) for _, row in train.iterrows()]
    if keep is not None and keep.exists():
        raise SystemExit(f"{keep} exists: a timing needs an empty cache; remove it or pick another path")
    with tempfile.TemporaryDirectory() as scratch:
        out = keep if keep is not None else Path(scratch) / "qm9.h5"
        out.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        result = featurize_many(atoms, out, names=list(train.index), progress=True)
        elapsed = time.perf_counter() - start
    failed = int(result["error"].notna().sum())
    rate = n / elapsed
    return [
        f"QM9: {n} training molecules featurised in {elapsed:.0f} s with {os.cpu_count()} local Dask workers "
        f"({failed} failed): {rate:.2f} molecules/s; 10,000 molecules take {10_000 / rate / 60:.0f} min at this rate",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-baseline", action="store_true", help="do not run B3LYP (quick check)")
    parser.add_argument("--qm9", type=int, default=0, help="also featurise this many QM9 molecules")
    parser.add_argument("--no-drugs", action="store_true", help="only the QM9 part")
    parser.add_argument("--keep", type=Path, help="write the QM9 features to this (new) HDF5 file and keep it")
    args = parser.parse_args()
    lines = [f"Featurisation speed ({os.cpu_count()} CPU cores, PySCF threads: all)", ""]
    if not args.no_drugs:
        lines += drug_table(args.skip_baseline)
    if args.qm9:
        lines += [""] + qm9_rate(args.qm9, args.keep)
    text = "\n".join(lines)
    print(text)
    if not args.skip_baseline:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        previous = RESULTS.read_text() if RESULTS.exists() and args.no_drugs else ""
        RESULTS.write_text((previous + "\n\n" if previous else "") + text +
                           f"\n\nCommand: `.venv/bin/python benchmarks/featurize_speed.py{' --qm9 ' + str(args.qm9) if args.qm9 else ''}{' --no-drugs' if args.no_drugs else ''}`\n")


if __name__ == "__main__":
    main()
