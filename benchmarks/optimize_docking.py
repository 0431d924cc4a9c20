"""Docking-score optimisation of known drugs against a dockstring target.

For each drug (``--drugs``: five approved antipsychotics that act on DRD2, written without
stereochemistry as the MOSES-trained generator reads molecules), the RetMol loop minimises the Vina score (exhaustiveness ``--exhaustiveness``) under
QED ≥ 0.6, SA ≤ 4 and Tanimoto ≥ 0.6 to the drug. Printed per drug: the drug's score, the
best optimised score, its similarity, QED and SA, and the time taken. The exemplar database
starts with MOSES (whose docking scores are unknown, so exemplars are the molecules docked
during the run), as in RetMol's docking experiments.

Run:  .venv/bin/python benchmarks/optimize_docking.py [--target DRD2] [--n-iter 10]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "optimize_docking.md"
#: Approved DRD2-active drugs, SMILES without stereo (the generator's vocabulary is MOSES's).
DRUGS = {
    "haloperidol": "O=C(CCCN1CCC(O)(c2ccc(Cl)cc2)CC1)c1ccc(F)cc1",
    "risperidone": "Cc1nc2n(c(=O)c1CCN1CCC(c3noc4cc(F)ccc34)CC1)CCCC2",
    "aripiprazole": "O=C1CCc2ccc(OCCCCN3CCN(c4cccc(Cl)c4Cl)CC3)cc2N1",
    "sulpiride": "CCN1CCCC1CNC(=O)c1cc(S(N)(=O)=O)ccc1OC",
    "clozapine": "CN1CCN(C2=Nc3cc(Cl)ccc3Nc3ccccc32)CC1",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="DRD2")
    parser.add_argument("--exhaustiveness", type=int, default=4)
    parser.add_argument("--n-iter", type=int, default=10)
    parser.add_argument("--n-samples", type=int, default=10)
    parser.add_argument("--drugs", nargs="+", default=list(DRUGS))
    args = parser.parse_args()
    from generation.optimize import Constraint, OptimizeSettings, optimize
    from molops.objectives import docking

    settings = OptimizeSettings(n_iterations=args.n_iter, n_samples=args.n_samples, top_k=3, min_similarity=0.6,
                                constraints=(Constraint("qed", minimum=0.6), Constraint("sa_score", maximum=4.0)))
    lines = ["| drug | Vina before (kcal/mol) | best after | Δ | similarity | QED | SA | minutes |", "|---|---|---|---|---|---|---|---|"]
    for name in args.drugs:
        tick = time.perf_counter()
        objective = docking(args.target, exhaustiveness=args.exhaustiveness)
        frame = optimize(DRUGS[name], objective, settings=settings)
        before = frame.attrs["lead"][objective.name]
        minutes = (time.perf_counter() - tick) / 60
        if frame.empty:
            lines.append(f"| {name} | {before:.2f} | none met the constraints | | | | | {minutes:.1f} |")
        else:
            best = frame.iloc[0]
            lines.append(f"| {name} | {before:.2f} | {best[objective.name]:.2f} | {best[objective.name] - before:+.2f} | "
                         f"{best['similarity']:.2f} | {best['qed']:.2f} | {best['sa_score']:.2f} | {minutes:.1f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    RESULTS.write_text(
        f"# Vina-score optimisation against {args.target} (QED ≥ 0.6, SA ≤ 4, similarity ≥ 0.6)\n\n"
        f"Command: `.venv/bin/python benchmarks/optimize_docking.py --target {args.target} --exhaustiveness "
        f"{args.exhaustiveness} --n-iter {args.n_iter} --n-samples {args.n_samples}`\n\n{text}\n")


if __name__ == "__main__":
    main()
