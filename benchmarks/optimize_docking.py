"""Docking-score optimisation of known drugs against a dockstring target.

For each drug (``--drugs``: five approved antipsychotics that act on DRD2, written without
stereochemistry as the MOSES-trained generator reads molecules), the RetMol loop minimises the
Vina score under QED ≥ 0.6, SA ≤ 4 and Tanimoto ≥ 0.6 to the drug. The search scores every
candidate at a cheap exhaustiveness (``--exhaustiveness``, default 1, the screening setting);
the drug and the ``--confirm`` best candidates are then re-docked at ``--confirm-exhaustiveness``
(default 8, Vina's default), and the best confirmed candidate is reported, so that a lucky
cheap score cannot pass for an improvement. The exemplar database starts with MOSES (whose
docking scores are unknown, so exemplars are the molecules docked during the run), as in
RetMol's docking experiments.

Resumable: one JSON line per drug in
``benchmarks/results/optimize_docking.<generator hash>.<settings>.journal.jsonl``; the table
(``benchmarks/results/optimize_docking.md``) is written once every drug is done.

Run:  .venv/bin/python benchmarks/optimize_docking.py [--target DRD2] [--n-iter 8] [--max-minutes 60]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from optimization_runner import RESULTS, journal_path, read_journal

#: Approved DRD2-active drugs, SMILES without stereo (the generator's vocabulary is MOSES's).
DRUGS = {
    "haloperidol": "O=C(CCCN1CCC(O)(c2ccc(Cl)cc2)CC1)c1ccc(F)cc1",
    "risperidone": "Cc1nc2n(c(=O)c1CCN1CCC(c3noc4cc(F)ccc34)CC1)CCCC2",
    "aripiprazole": "O=C1CCc2ccc(OCCCCN3CCN(c4cccc(Cl)c4Cl)CC3)cc2N1",
    "sulpiride": "CCN1CCCC1CNC(=O)c1cc(S(N)(=O)=O)ccc1OC",
    "clozapine": "CN1CCN(C2=Nc3cc(Cl)ccc3Nc3ccccc32)CC1",
}


def optimise_drug(name: str, args: argparse.Namespace) -> dict:
    """Search at the cheap exhaustiveness, confirm the best candidates at the thorough one."""
    from generation.optimize import Constraint, OptimizeSettings, optimize
    from molops.objectives import docking

    tick = time.perf_counter()
    settings = OptimizeSettings(n_iterations=args.n_iter, n_samples=args.n_samples, top_k=3, min_similarity=0.6,
                                constraints=(Constraint("qed", minimum=0.6), Constraint("sa_score", maximum=4.0)))
    search = docking(args.target, exhaustiveness=args.exhaustiveness)
    frame = optimize(DRUGS[name], search, settings=settings)
    search_minutes = (time.perf_counter() - tick) / 60
    row = {"drug": name, "lead": frame.attrs["lead"]["smiles"], "before_search": frame.attrs["lead"][search.name],
           "candidates": len(frame), "search_minutes": search_minutes}
    confirm = docking(args.target, exhaustiveness=args.confirm_exhaustiveness)
    top = frame.head(args.confirm)
    scores = confirm([row["lead"], *top["smiles"]])
    row["before"] = float(scores[0])
    if len(top):
        best = int(np.nanargmin(scores[1:])) if np.isfinite(scores[1:]).any() else 0
        chosen = top.iloc[best]
        row.update(smiles=chosen["smiles"], after_search=float(chosen[search.name]), after=float(scores[1 + best]),
                   similarity=float(chosen["similarity"]), qed=float(chosen["qed"]), sa=float(chosen["sa_score"]))
    row["minutes"] = (time.perf_counter() - tick) / 60
    return row


def table(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f"| drug | Vina before (kcal/mol) | best after | Δ | similarity | QED | SA | search score before → after "
             f"(exh. {args.exhaustiveness}) | candidates | minutes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "smiles" not in row:
            lines.append(f"| {row['drug']} | {row['before']:.2f} | none met the constraints | | | | | "
                         f"{row['before_search']:.2f} | 0 | {row['minutes']:.1f} |")
            continue
        lines.append(f"| {row['drug']} | {row['before']:.2f} | {row['after']:.2f} | {row['after'] - row['before']:+.2f} | "
                     f"{row['similarity']:.2f} | {row['qed']:.2f} | {row['sa']:.2f} | {row['before_search']:.2f} → "
                     f"{row['after_search']:.2f} | {row['candidates']} | {row['minutes']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="DRD2")
    parser.add_argument("--exhaustiveness", type=int, default=1, help="Vina exhaustiveness of the search")
    parser.add_argument("--confirm-exhaustiveness", type=int, default=8)
    parser.add_argument("--confirm", type=int, default=3, help="best search candidates re-docked")
    parser.add_argument("--n-iter", type=int, default=8)
    parser.add_argument("--n-samples", type=int, default=10)
    parser.add_argument("--drugs", nargs="+", default=list(DRUGS), choices=list(DRUGS))
    parser.add_argument("--max-minutes", type=float, default=None, help="start no new drug after this")
    args = parser.parse_args()
    journal = journal_path("optimize_docking", {
        "target": args.target, "exh": args.exhaustiveness, "confirm": f"{args.confirm}x{args.confirm_exhaustiveness}",
        "n_iterations": args.n_iter, "n_samples": args.n_samples})
    done = {row["drug"]: row for row in read_journal(journal)}
    started = time.perf_counter()
    for name in args.drugs:
        if name in done:
            continue
        if args.max_minutes is not None and (time.perf_counter() - started) / 60 > args.max_minutes:
            break
        done[name] = optimise_drug(name, args)
        with open(journal, "a") as handle:
            handle.write(json.dumps(done[name]) + "\n")
        print(table([done[name]], args).splitlines()[-1], flush=True)
    rows = [done[name] for name in args.drugs if name in done]
    text = table(rows, args)
    print(text)
    if len(rows) == len(args.drugs):
        from generation.grammar import GRAMMAR_VERSION

        (RESULTS / "optimize_docking.md").write_text(
            f"# Vina-score optimisation against {args.target} (QED ≥ 0.6, SA ≤ 4, similarity ≥ 0.6)\n\n"
            f"Command: `.venv/bin/python benchmarks/optimize_docking.py --target {args.target} --exhaustiveness "
            f"{args.exhaustiveness} --n-iter {args.n_iter} --n-samples {args.n_samples}` (generator "
            f"{journal.name.split('.')[1]}, SMILES grammar v{GRAMMAR_VERSION}). The search scores candidates at exhaustiveness {args.exhaustiveness}; "
            f"the drug and the {args.confirm} best candidates are re-docked at exhaustiveness "
            f"{args.confirm_exhaustiveness}, and 'before', 'best after' and Δ are those confirmed scores.\n\n{text}\n")
    else:
        print(f"incomplete: {len(rows)} of {len(args.drugs)} drugs; run again to continue")


if __name__ == "__main__":
    main()
