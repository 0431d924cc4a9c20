"""Penalised-logP optimisation benchmark (the JT-VAE / RetMol constrained task) on MOSES.

Leads: the ``--n`` MOSES test molecules with the lowest penalised logP (JT-VAE definition,
`molops.descriptors.penalized_logp`) in a fixed random sample of 20,000. For each similarity
floor (0.4 and 0.6) the score of a lead is the improvement of the best generated molecule
over the lead (0 when nothing valid meets the floor, as in the JT-VAE protocol). Methods, in
one run: the RetMol generator, the same loop without retrieval, and the best MOSES training
molecule within the floor (no generation). Anchor: RetMol 11.55 (δ = 0.4) / 3.78 (δ = 0.6).

``--methods`` splits the methods over processes. Resumable like optimize_qed.py (``benchmarks/results/optimize_plogp.<generator hash>.<settings>.journal.jsonl``).

Run:  .venv/bin/python benchmarks/optimize_plogp.py [--n 200] [--max-minutes 150]
"""

from __future__ import annotations

import argparse

import numpy as np

from optimization_runner import METHODS, RESULTS, add_split_arguments, generator_digest, run

FLOORS = [0.4, 0.6]


def leads(n: int) -> list[str]:
    from generation.retrieval import molecule_properties
    from molops.data import moses_smiles

    pool = moses_smiles("test").sample(20_000, random_state=0).tolist()
    values = molecule_properties(pool)["penalized_logp"].to_numpy()
    order = np.argsort(values)
    return [pool[i] for i in order[:n]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--n-iter", type=int, default=20)
    parser.add_argument("--n-samples", type=int, default=20)
    add_split_arguments(parser)
    args = parser.parse_args()
    from generation.grammar import GRAMMAR_VERSION
    from molops.objectives import penalized_logp

    chosen = leads(args.n)
    rows = run("optimize_plogp", chosen[::-1] if args.reverse else chosen, penalized_logp, "penalized_logp", FLOORS,
               success=lambda best, lead, sim: best > lead,
               settings_kwargs={"n_iterations": args.n_iter, "n_samples": args.n_samples},
               methods=tuple(args.methods.split(",")), max_minutes=args.max_minutes)
    rows = rows[rows["lead"].isin(chosen)].copy()
    rows["improvement"] = np.where(rows["success"], rows["best_value"] - rows["lead_value"], 0.0)
    table = ["| method | similarity ≥ | leads | mean improvement ± sd | improved | seconds per lead |",
             "|---|---|---|---|---|---|"]
    for floor in FLOORS:
        for method in METHODS:
            part = rows[(rows["method"] == method) & (rows["min_similarity"] == floor)]
            if len(part):
                table.append(f"| {method} | {floor} | {len(part)} | {part['improvement'].mean():.2f} ± "
                             f"{part['improvement'].std():.2f} | {100 * part['success'].mean():.1f} % | "
                             f"{part['seconds'].mean():.1f} |")
    text = "\n".join(table)
    print(text)
    complete = len(rows) == len(chosen) * len(METHODS) * len(FLOORS)
    # A partial table is written too (marked), so the committed table always matches the journal.
    partial = "" if complete else (f"**Partial run**: {len(rows)} of {len(chosen) * len(METHODS) * len(FLOORS)} "
                                   "(lead, method, floor) rows so far; the same command resumes it.\n\n")
    (RESULTS / "optimize_plogp.md").write_text(
        "# Penalised logP optimisation under a similarity floor, lowest-pLogP MOSES test leads\n\n"
        f"Command: `.venv/bin/python benchmarks/optimize_plogp.py --n {args.n}` (generator {generator_digest()}, SMILES grammar v{GRAMMAR_VERSION}, "
        f"{args.n_iter} iterations of {args.n_samples} samples; improvement 0 where nothing improves within the floor)\n\n{text}\n\n{partial}"
        "Anchor: RetMol 11.55 (δ = 0.4), 3.78 (δ = 0.6).\n")
    if not complete:
        print(f"incomplete: {len(rows)} of {len(chosen) * len(METHODS) * len(FLOORS)} rows; run again to continue")


if __name__ == "__main__":
    main()
