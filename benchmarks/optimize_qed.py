"""QED optimisation benchmark (RetMol's QED task) on MOSES test molecules.

Leads: ``--n`` MOSES test molecules with 0.7 <= QED < 0.8 (a fixed random sample). Success for
a lead: any generated molecule with QED >= 0.9 and Tanimoto (Morgan r=2) >= 0.4 to the lead.
Methods, in one run: the RetMol generator, the same loop without retrieval, and the best
molecule of the MOSES training database within the similarity floor (no generation).
Anchor: RetMol reports 94.5 % success; target here >= 95 %. By default a lead's loop stops at
its first success (pass/fail task: the rate is the same, the time is time-to-success);
``--full-runs`` runs every iteration. The loop's goal is the task's bar (QED 0.9): exemplars are
retrieved among molecules reaching it, as RetMol retrieves molecules meeting the design criteria
(settings tuned on other leads: `tune_optimize.py`).

Resumable: per-lead rows go to ``benchmarks/results/optimize_qed.<generator hash>.<settings>.journal.jsonl``;
``--max-minutes`` bounds one call. The table goes to ``benchmarks/results/optimize_qed.md``
once every lead has every method.

Run:  .venv/bin/python benchmarks/optimize_qed.py --n 200 --n-iter 40 --noise-std 1.5 [--max-minutes 150]
      (the settings chosen with `tune_optimize.py`; ``--methods`` splits the methods over processes)
"""

from __future__ import annotations

import argparse


from optimization_runner import METHODS, RESULTS, add_split_arguments, generator_digest, run


def leads(n: int) -> list[str]:
    from rdkit import Chem
    from rdkit.Chem import QED

    from molops.data import moses_smiles

    pool = moses_smiles("test").sample(frac=1.0, random_state=0)
    chosen = []
    for smiles in pool:
        if 0.7 <= QED.qed(Chem.MolFromSmiles(smiles)) < 0.8:
            chosen.append(smiles)
            if len(chosen) == n:
                break
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--n-iter", type=int, default=20)
    parser.add_argument("--n-samples", type=int, default=20)
    parser.add_argument("--noise-std", type=float, default=1.0)
    parser.add_argument("--goal", type=float, default=0.9,
                        help="OptimizeSettings.goal: exemplars are retrieved among molecules with QED >= goal "
                             "(the task's bar, as RetMol retrieves molecules meeting the criteria); 0 turns it off")
    add_split_arguments(parser)
    parser.add_argument("--full-runs", action="store_true",
                        help="run all iterations for every lead (default: a lead's loop stops at its first success)")
    args = parser.parse_args()
    from generation.grammar import GRAMMAR_VERSION
    from molops.objectives import qed

    chosen = leads(args.n)
    settings = {"n_iterations": args.n_iter, "n_samples": args.n_samples, **({"goal": args.goal} if args.goal else {}),
                **({"noise_std": args.noise_std} if args.noise_std != 1.0 else {})}
    rows = run("optimize_qed", chosen[::-1] if args.reverse else chosen, qed, "qed", [0.4],
               success=lambda best, lead, sim: best >= 0.9 and sim >= 0.4, settings_kwargs=settings,
               methods=tuple(args.methods.split(",")), max_minutes=args.max_minutes,
               stop_at_success=not args.full_runs)
    rows = rows[rows["lead"].isin(chosen)]
    stop = "full runs" if args.full_runs else "to success"
    table = [f"| method | leads | success rate | mean best QED ({stop}) | seconds per lead ({stop}) |",
             "|---|---|---|---|---|"]
    for method in METHODS:
        part = rows[rows["method"] == method]
        if len(part):
            table.append(f"| {method} | {len(part)} | {100 * part['success'].mean():.1f} % | "
                         f"{part['best_value'].mean():.3f} | {part['seconds'].mean():.1f} |")
    text = "\n".join(table)
    print(text)
    complete = all((rows["method"] == m).sum() == len(chosen) for m in METHODS)
    # A partial table is written too (marked), so the committed table always matches the journal.
    partial = "" if complete else (f"**Partial run**: {len(rows)} of {len(chosen) * len(METHODS)} (lead, method) rows so far; "
                                   "the same command resumes it.\n\n")
    (RESULTS / "optimize_qed.md").write_text(
        "# QED optimisation (QED 0.7-0.8 → ≥ 0.9, similarity ≥ 0.4), MOSES test leads\n\n"
        f"Command: `.venv/bin/python benchmarks/optimize_qed.py --n {args.n}"
        + (" --full-runs" if args.full_runs else "")
        + (f" --goal {args.goal:g}" if args.goal != 0.9 else "")
        + (f" --n-iter {args.n_iter}" if args.n_iter != 20 else "")
        + (f" --noise-std {args.noise_std:g}" if args.noise_std != 1.0 else "")
        + f"` (generator {generator_digest()}, SMILES grammar v{GRAMMAR_VERSION}, up to {args.n_iter} iterations of {args.n_samples} samples"
        + (f"; exemplars retrieved among molecules with QED ≥ {args.goal:g} where any exist" if args.goal else "")
        + ("" if args.full_runs else "; a lead's loop stops at its first success") + f")\n\n{text}\n\n{partial}"
        "Anchor: RetMol 94.5 % success.\n")
    if not complete:
        print(f"incomplete: {len(rows)} of {len(chosen) * len(METHODS)} rows; run again to continue")


if __name__ == "__main__":
    main()
