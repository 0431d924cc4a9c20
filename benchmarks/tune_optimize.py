"""Tune the optimisation loop's settings on QED leads kept apart from the benchmark's.

The QED benchmark (`optimize_qed.py`) uses the first ``--n`` (200) leads of a fixed shuffle of
the MOSES test molecules with 0.7 <= QED < 0.8; tuning uses the leads after them (200, 201, …),
so that the settings are never chosen on the molecules they are judged on. Each call runs one
settings variant (``--noise-std``, ``--grammar/--no-grammar``, ``--n-samples`` …) for the RetMol
loop (and, with ``--ablation``, the loop without retrieval), stops a lead at its first success,
and journals to ``benchmarks/results/tune_qed.<generator hash>.<settings>.journal.jsonl``
(resumable). ``--table`` prints every variant journaled for the shipped generator side by side,
on the leads they share, and writes it to ``benchmarks/results/tune_qed.md``.

Run:  .venv/bin/python benchmarks/tune_optimize.py --noise-std 1.5 --n-leads 40
      .venv/bin/python benchmarks/tune_optimize.py --table
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from optimization_runner import RESULTS, generator_digest, read_journal, run
from optimize_qed import leads

#: Leads of the benchmark proper; tuning leads come after them.
BENCHMARK_LEADS = 200


def tuning_leads(n: int) -> list[str]:
    """`n` QED leads disjoint from the benchmark's first `BENCHMARK_LEADS`."""
    return leads(BENCHMARK_LEADS + n)[BENCHMARK_LEADS:]


def table(generator_path: Path | None = None) -> str:
    """Success rate and time per lead of every journaled variant, on the leads all share."""
    frames = []
    prefix, suffix = f"tune_qed.{generator_digest(generator_path)}.", ".journal.jsonl"
    for path in sorted(RESULTS.glob(f"{prefix}*{suffix}")):
        rows = pd.DataFrame(read_journal(path))
        if len(rows):
            frames.append(rows.assign(variant=path.name[len(prefix):-len(suffix)]))
    if not frames:
        return "no tuning journals for the shipped generator"
    rows = pd.concat(frames)
    retmol = rows[rows["method"] == "retmol"]
    shared = set.intersection(*(set(part["lead"]) for _, part in retmol.groupby("variant")))
    lines = [f"Tuning leads run by every variant: {len(shared)}", "",
             f"| variant | method | leads run | success rate | success on the {len(shared)} shared leads | "
             "mean best QED | seconds per lead |", "|---|---|---|---|---|---|---|"]
    for (variant, method), part in rows.groupby(["variant", "method"]):
        common = part[part["lead"].isin(shared)]
        lines.append(f"| {variant} | {method} | {len(part)} | {100 * part['success'].mean():.1f} % | "
                     f"{100 * common['success'].mean():.1f} % | "
                     f"{part['best_value'].mean():.3f} | {part['seconds'].mean():.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-leads", type=int, default=40)
    parser.add_argument("--noise-std", type=float, default=1.0)
    parser.add_argument("--n-samples", type=int, default=20)
    parser.add_argument("--n-iter", type=int, default=20)
    parser.add_argument("--k-exemplars", type=int, default=10)
    parser.add_argument("--goal", type=float, default=None, help="OptimizeSettings.goal (retrieve exemplars reaching it)")
    parser.add_argument("--grammar", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--ablation", action="store_true", help="also run the loop without retrieval")
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--generator", type=Path, default=None,
                        help="generator file to tune (default: the shipped one); its hash names the journals")
    parser.add_argument("--tag", default="", help="added to the journal name: a code variant under test")
    parser.add_argument("--table", action="store_true", help="only print the table of journaled variants")
    args = parser.parse_args()
    if not args.table:
        from molops.objectives import qed

        settings = {"n_iterations": args.n_iter, "n_samples": args.n_samples, "noise_std": args.noise_std,
                    "grammar": int(args.grammar)}
        if args.goal is not None:
            settings["goal"] = args.goal
        if args.k_exemplars != 10:  # non-default knobs only, so that journal names stay stable
            settings["k_exemplars"] = args.k_exemplars
        run("tune_qed", tuning_leads(args.n_leads), qed, "qed", [0.4],
            success=lambda best, lead, sim: best >= 0.9 and sim >= 0.4, settings_kwargs=settings,
            methods=("retmol", "no-retrieval") if args.ablation else ("retmol",),
            max_minutes=args.max_minutes, stop_at_success=True, generator_path=args.generator,
            journal_tag=args.tag)
    text = table(args.generator)
    print(text)
    if args.generator is None:
        (RESULTS / "tune_qed.md").write_text(
            f"# Tuning the optimisation loop on QED leads 200+ (kept apart from the benchmark's 200)\n\n"
            f"Generator {generator_digest()}; command: `.venv/bin/python benchmarks/tune_optimize.py --table`. "
            "A lead's loop stops at its first success (QED ≥ 0.9, similarity ≥ 0.4). Variant names are the "
            "OptimizeSettings that differ; `tagnearlead`: exemplars meeting the similarity floor to the lead "
            "are retrieved first (the code's behaviour since).\n\n" + text + "\n")


if __name__ == "__main__":
    main()
