"""Text-guided editing hit ratios (MoleculeSTM's evaluation) for `generation.editor.edit`.

For ``--n`` MOSES test molecules (a fixed random sample) and each prompt of
benchmarks/edit_prompts.py, the editor's top edit (``n=1``) is judged here, independently of
the editor's own report, with RDKit:

- loose hit: the property moved the requested way (ΔlogP, ΔQED, ΔTPSA, ΔHBA, ΔHBD ≠ 0 in the
  right sign); strict hit: by at least ΔlogP 0.5, ΔQED 0.1, ΔTPSA 10 Å², ΔHBA/HBD 1;
  "looks like <drug>": higher Tanimoto (Morgan r=2, 2048 bits) to the drug than the input
  (loose = strict). No edit returned counts as a miss.
- similarity: Tanimoto of the edit to its input (mean over returned edits); seconds per edit.
- best of database (baseline, no generation): the MOSES training molecule above the similarity
  floor that a chemist would pick by searching the library: a strict hit if there is one,
  else a loose hit, the most similar first. It also shows how often a strict edit exists at all
  within the floor (e.g. a lead with QED 0.9 cannot gain 0.1).
- best single-atom edit (baseline, no generation): the same pick among the input's one-step
  analogues within the floor (`generation.analogues`: every element swap, added atom and
  removed terminal atom), i.e. what exhaustive enumeration of a chemist's first ideas gives.
  By default the editor also offers these analogues as edits (``source`` "single-atom edit");
  run with ``--no-single-atom-edits`` to see what the generator adds beyond them.

Anchor: MoleculeSTM (Liu et al., Nat. Mach. Intell. 2023, arXiv 2212.10789 Table 14) reports
hit ratios for these prompts on 200 ZINC molecules; its released scoring counts a hit at any
change in the right direction (the loose threshold), with no similarity floor (closeness comes
from an L2 term on the latent) and a hit if any of five L2 weights succeeds. The table's numbers
are not in this offline environment, so none are quoted here.

Paraphrases: each held-out paraphrase is read by the editor; a paraphrase read exactly like
its canonical prompt gets the same edits (the editor is deterministic given the reading:
they are looked up, not recomputed); one read differently is edited on its own; one refused
counts as misses on every molecule.

Results are journalled per (reading, molecule) in
benchmarks/results/edit_hit_ratio.<model hash>.<settings>.journal.jsonl, so the run resumes where
it stopped (``--max-minutes`` bounds one sitting) and a new model or setting starts afresh.
``--reverse`` runs a second process on the same journal from the last molecule backwards; each
rereads the journal before an edit, so the two meet halfway without redoing each other's work.

Settings are tuned with ``--dev`` on the molecules after the benchmark's 200 in the same shuffle
(never on the molecules they are judged on).

Run:  .venv/bin/python benchmarks/edit_hit_ratio.py [--n 200] [--max-minutes 60] [--reverse]
      .venv/bin/python benchmarks/edit_hit_ratio.py --dev --n 30 --tasks drug-like [--no-goal]   (tuning)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import QED, Crippen, Descriptors, rdMolDescriptors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edit_prompts import LOOKS_LIKE, SINGLE_OBJECTIVE  # noqa: E402
from optimization_runner import generator_digest  # noqa: E402

from generation.editor import EditSettings, edit  # noqa: E402
from generation.analogues import one_step_analogues  # noqa: E402
from generation.grammar import GRAMMAR_VERSION  # noqa: E402
from generation.errors import GenerationError  # noqa: E402
from generation.optimize import default_generator_path, load_generator  # noqa: E402
from generation.prompts import QED_MAX, PromptError, interpret, resolve_drug  # noqa: E402
from generation.retrieval import ExemplarDatabase, moses_properties  # noqa: E402
from molops.data import moses_smiles  # noqa: E402
from molops.library import load_library_index  # noqa: E402
from molops.similarity import SimilarityIndex, tanimoto  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

MEASURES = {
    "logp": Crippen.MolLogP, "qed": QED.qed, "tpsa": rdMolDescriptors.CalcTPSA,
    "hba": Descriptors.NumHAcceptors, "hbd": Descriptors.NumHDonors,
}


#: Molecules of the benchmark proper (the first of the shuffle); ``--dev`` tunes on the ones after.
BENCHMARK_MOLECULES = 200


def judge(task: dict, source: str, edited: str | None) -> tuple[bool, bool]:
    """(loose, strict) hit of one edit, measured here."""
    if edited is None:
        return False, False
    a, b = Chem.MolFromSmiles(source), Chem.MolFromSmiles(edited)
    if task["kind"] == "like":
        gain = tanimoto(b, task["reference"]) - tanimoto(a, task["reference"])
        return gain > 0, gain > 0
    change = task["direction"] * (float(MEASURES[task["property"]](b)) - float(MEASURES[task["property"]](a)))
    return change > 0, change >= task["threshold"]


def database_edit(task: dict, source: str, database: ExemplarDatabase, floor: float) -> str | None:
    """Best-of-database baseline: the closest MOSES train molecule within `floor` making a strict hit, else a loose one."""
    sims = database.similarities(source)
    near = np.flatnonzero((sims >= floor) & (sims < 1.0))
    best: tuple[int, float, str] | None = None
    for row in near[np.argsort(-sims[near], kind="stable")]:
        candidate = str(database.smiles[row])
        loose, strict = judge(task, source, candidate)
        if strict:
            return candidate
        if loose and best is None:
            best = (1, float(sims[row]), candidate)
    return best[2] if best else None


def analogue_edit(task: dict, source: str, analogues: list[tuple[str, float]]) -> str | None:
    """Best single-atom edit baseline: among `analogues` (SMILES, similarity to `source`, all within
    the floor), the most similar strict hit, else the most similar loose one."""
    loose_pick = None
    for candidate, _ in sorted(analogues, key=lambda pair: -pair[1]):
        loose, strict = judge(task, source, candidate)
        if strict:
            return candidate
        if loose and loose_pick is None:
            loose_pick = candidate
    return loose_pick


def analogues_within(source: str, floor: float) -> list[tuple[str, float]]:
    """One-step analogues of `source` with Tanimoto ≥ `floor` to it, with that similarity."""
    analogues = one_step_analogues(source)
    if not analogues:
        return []
    sims = SimilarityIndex.from_smiles(analogues, parallel=False).similarities(source)
    return [(a, float(x)) for a, x in zip(analogues, sims) if x >= floor]


def load_journal(path: Path) -> dict[tuple[str, str], dict]:
    done = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill: redone
                continue
            # The first row of a pair two processes raced on (--reverse) is the one kept.
            done.setdefault((row["reading"], row["smiles"]), row)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="MOSES test molecules")
    parser.add_argument("--min-similarity", type=float, default=0.6)
    parser.add_argument("--n-iter", type=int, default=EditSettings.n_iterations)
    parser.add_argument("--n-samples", type=int, default=EditSettings.n_samples)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this long (resume later)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reverse", action="store_true",
                        help="take the molecules last first: a second process on the same journal meets the first halfway")
    parser.add_argument("--model", type=Path, default=None, help="generator file (default: the shipped one)")
    parser.add_argument("--goal", action=argparse.BooleanOptionalAction, default=EditSettings.goal,
                        help="EditSettings.goal: exemplars among molecules making one strict step of every change "
                             "(default: the editor's default)")
    parser.add_argument("--no-analogues", action="store_true",
                        help="EditSettings.analogue_exemplars off: exemplars from MOSES and the generated molecules only")
    parser.add_argument("--no-single-atom-edits", action="store_true",
                        help="EditSettings.single_atom_edits off: the generator's edits only (the ablation)")
    parser.add_argument("--dev", action="store_true",
                        help=f"tuning molecules: the {BENCHMARK_MOLECULES + 1}st onwards of the same shuffle, disjoint from "
                             "the benchmark's; the table goes to edit_hit_ratio_dev*.md")
    parser.add_argument("--tasks", default=None,
                        help="comma-separated task names to run (e.g. 'drug-like,more HBD'); default all. "
                             "A subset writes its table to edit_hit_ratio_subset*.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    RDLogger.DisableLog("rdApp.*")

    # A fixed shuffle: the first n molecules of it (n after the benchmark's with --dev), so a
    # smaller run is a prefix of a larger one.
    shuffled = moses_smiles("test").sample(frac=1.0, random_state=0)
    first = BENCHMARK_MOLECULES if args.dev else 0
    molecules = shuffled.iloc[first:first + args.n].tolist()
    tasks = []
    for name, prompt, prop, direction, threshold, paraphrases in SINGLE_OBJECTIVE:
        tasks.append({"task": name, "prompt": prompt, "kind": "property", "property": prop, "direction": direction,
                      "threshold": threshold, "paraphrases": paraphrases})
    for name, prompt, drug, paraphrases in LOOKS_LIKE:
        tasks.append({"task": name, "prompt": prompt, "kind": "like", "reference": Chem.MolFromSmiles(resolve_drug(drug)[1]),
                      "paraphrases": paraphrases})
    if args.tasks:
        wanted = [t.strip() for t in args.tasks.split(",")]
        unknown = sorted(set(wanted) - {t["task"] for t in tasks})
        if unknown:
            parser.error(f"unknown task(s) {unknown}; choose from {[t['task'] for t in tasks]}")
        tasks = [t for t in tasks if t["task"] in wanted]

    # Read every prompt first: the edits needed are one per distinct reading and molecule.
    readings = {}
    for task in tasks:
        for prompt in [task["prompt"], *task["paraphrases"]]:
            try:
                readings[prompt] = interpret(prompt, args.min_similarity)
            except PromptError as exc:
                readings[prompt] = exc
    todo = []
    for task in tasks:
        for prompt in [task["prompt"], *task["paraphrases"]]:
            reading = readings[prompt]
            if not isinstance(reading, PromptError) and reading.describe() not in {r.describe() for r, _ in todo}:
                todo.append((reading, task))

    generator = load_generator(args.model)
    moses_index, properties = load_library_index("moses"), moses_properties()
    database = ExemplarDatabase(moses_index, properties)  # never grown: the best-of-database baseline reads it
    settings = EditSettings(n_iterations=args.n_iter, n_samples=args.n_samples, goal=args.goal,
                            analogue_exemplars=not args.no_analogues, single_atom_edits=not args.no_single_atom_edits)
    digest = generator_digest(args.model)
    variant = ("-goal" if args.goal else "") + ("" if args.no_analogues else "-analogues")
    variant += "" if args.no_single_atom_edits else "-single"
    journal_path = RESULTS / (f"edit_hit_ratio.{digest}.iter{args.n_iter}-samples{args.n_samples}{variant}"
                              f"-grammarv{GRAMMAR_VERSION}.journal.jsonl")
    done = load_journal(journal_path)
    RESULTS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stopped = False
    with journal_path.open("a") as journal:
        order = list(enumerate(molecules))
        for index, source in (reversed(order) if args.reverse else order):  # molecule-major: tasks advance together
            for reading, task in todo:
                key = (reading.describe(), source)
                if key in done:
                    continue
                # Another process may share the journal (--reverse): reread what it has
                # finished before starting an edit.
                for other_key, other_row in load_journal(journal_path).items():
                    done.setdefault(other_key, other_row)
                if key in done:
                    continue
                if args.max_minutes is not None and time.perf_counter() - start > 60 * args.max_minutes:
                    stopped = True
                    break
                row = {"reading": key[0], "smiles": source, "edit": None, "similarity": None,
                       "seconds": None, "error": None}
                begin = time.perf_counter()
                try:
                    # A fresh database per edit, as a user's own `edit` call gets: molecules
                    # generated for one input must not help the next.
                    frame = edit(source, reading, n=1, generator=generator,
                                 database=ExemplarDatabase(moses_index, properties), settings=settings, progress=False)
                    if len(frame):
                        row["edit"] = frame["smiles"].iloc[0]
                        row["similarity"] = float(tanimoto(row["edit"], frame.attrs["input"]["smiles"]))
                except GenerationError as exc:
                    row["error"] = str(exc)
                row["seconds"] = time.perf_counter() - begin
                row["input"] = frame.attrs["input"]["smiles"] if row["error"] is None else source
                journal.write(json.dumps(row) + "\n")
                journal.flush()
                done[key] = row
            if stopped:
                break
            print(f"molecule {index + 1}/{len(molecules)} done ({(time.perf_counter() - start) / 60:.1f} min)", flush=True)

    def baseline(task: dict, rows: list[dict]) -> tuple[float, float]:
        """Loose and strict hit % of the best-of-database edit on the same molecules."""
        hits = [judge(task, r["input"], database_edit(task, r["input"], database, args.min_similarity)) for r in rows]
        return (100 * np.mean([h[0] for h in hits]), 100 * np.mean([h[1] for h in hits])) if hits else (np.nan, np.nan)

    near_analogues: dict[str, list[tuple[str, float]]] = {}

    def analogue_baseline(task: dict, rows: list[dict]) -> tuple[float, float]:
        """Loose and strict hit % of the best single-atom edit on the same molecules."""
        hits = []
        for r in rows:
            if r["input"] not in near_analogues:
                near_analogues[r["input"]] = analogues_within(r["input"], args.min_similarity)
            hits.append(judge(task, r["input"], analogue_edit(task, r["input"], near_analogues[r["input"]])))
        return (100 * np.mean([h[0] for h in hits]), 100 * np.mean([h[1] for h in hits])) if hits else (np.nan, np.nan)

    def score(reading, task) -> dict:
        rows = [done.get((reading.describe(), m)) for m in molecules]
        rows = [r for r in rows if r is not None]
        hits = [judge(task, r["input"], r["edit"]) for r in rows]
        sims = [r["similarity"] for r in rows if r["similarity"] is not None]
        return {"n": len(rows), "loose": 100 * np.mean([h[0] for h in hits]) if hits else np.nan,
                "strict": 100 * np.mean([h[1] for h in hits]) if hits else np.nan,
                "similarity": np.mean(sims) if sims else np.nan,
                "seconds": np.mean([r["seconds"] for r in rows]) if rows else np.nan,
                "returned": 100 * len(sims) / len(rows) if rows else np.nan}

    # Settings off the editor's defaults are named in the command and the table's file name.
    goal_flag = "" if args.goal == EditSettings.goal else ("--goal" if args.goal else "--no-goal")
    lines = [
        "# Text-guided editing: hit ratios (MoleculeSTM's evaluation)", "",
        f"Command: `.venv/bin/python benchmarks/edit_hit_ratio.py --n {args.n}{' --dev' if args.dev else ''}"
        f"{' ' + goal_flag if goal_flag else ''}"
        f"{f' --tasks {chr(34)}{args.tasks}{chr(34)}' if args.tasks else ''}"
        f"{' --no-analogues' if args.no_analogues else ''}"
        f"{' --no-single-atom-edits' if args.no_single_atom_edits else ''}` "
        f"(generator {digest}; {f'tuning molecules: n after the first {BENCHMARK_MOLECULES}' if args.dev else 'first n'} of a fixed "
        "shuffle of MOSES test, random_state 0; "
        f"similarity floor {args.min_similarity}; top edit per molecule; 2 CPU cores)", "",
        "| task | prompt | read as | molecules | loose hit % | strict hit % | mean similarity | edits returned % | s / edit "
        "| best of database: loose % | strict % | best single-atom edit: loose % | strict % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    canonical = {}
    for task in tasks:
        reading = readings[task["prompt"]]
        if isinstance(reading, PromptError):
            lines.append(f"| {task['task']} | {task['prompt']} | refused: {reading} | | 0 | 0 | | | | | | | |")
            continue
        s = score(reading, task)
        canonical[task["task"]] = s
        rows = [r for r in (done.get((reading.describe(), m)) for m in molecules) if r is not None]
        base_loose, base_strict = baseline(task, rows)
        one_loose, one_strict = analogue_baseline(task, rows)
        lines.append(f"| {task['task']} | {task['prompt']} | {reading.describe()} | {s['n']} | {s['loose']:.1f} | "
                     f"{s['strict']:.1f} | {s['similarity']:.3f} | {s['returned']:.0f} | {s['seconds']:.1f} | "
                     f"{base_loose:.1f} | {base_strict:.1f} | {one_loose:.1f} | {one_strict:.1f} |")
    qed_up = next((t for t in tasks if t["kind"] == "property" and t["property"] == "qed" and t["direction"] > 0), None)
    if qed_up is not None and not isinstance(readings[qed_up["prompt"]], PromptError):
        # QED cannot exceed QED_MAX: a strict step of 0.1 is impossible above 0.8484.
        reading = readings[qed_up["prompt"]]
        (qed_change,) = reading.changes
        inputs = [r["input"] for r in (done.get((reading.describe(), m)) for m in molecules) if r]
        feasible = sum(qed_change.room(float(MEASURES["qed"](Chem.MolFromSmiles(s)))) >= qed_up["threshold"]
                       for s in inputs)
        if inputs:
            lines += ["", f"Strict ceiling of \"{qed_up['task']}\": {feasible} of {len(inputs)} inputs "
                      f"({100 * feasible / len(inputs):.1f} %) have QED ≤ {QED_MAX - qed_up['threshold']:.4f}; "
                      f"QED cannot exceed {QED_MAX}, so no edit of the others can gain {qed_up['threshold']}."]
    lines += ["", "Held-out paraphrases (written with the benchmark, never used to build the editor):", "",
              "| task | paraphrase | read as canonical? | loose hit % | strict hit % |", "|---|---|---|---|---|"]
    agree, total = 0, 0
    for task in tasks:
        reference = readings[task["prompt"]]
        for prompt in task["paraphrases"]:
            reading = readings[prompt]
            total += 1
            if isinstance(reading, PromptError):
                lines.append(f"| {task['task']} | {prompt} | refused: {reading} | 0 | 0 |")
                continue
            same = not isinstance(reference, PromptError) and reading.signature() == reference.signature()
            agree += same
            s = score(reading, task)
            lines.append(f"| {task['task']} | {prompt} | {'yes' if same else 'no: ' + reading.describe()} | "
                         f"{s['loose']:.1f} | {s['strict']:.1f} |")
    lines += ["", f"Paraphrases read like their canonical prompt: {agree}/{total}."]
    complete = all(s["n"] == len(molecules) for s in canonical.values())
    if not complete:
        lines += ["", f"**Partial run**: {min(s['n'] for s in canonical.values())} of {len(molecules)} molecules so far "
                  "(resume with the same command)."]
    text = "\n".join(lines) + "\n"
    print(text)
    suffix = ("_dev" if args.dev else "") + ("_subset" if args.tasks else "")
    suffix += ("" if args.n == BENCHMARK_MOLECULES else f"_n{args.n}") + goal_flag.replace("-", "_")[1:]
    suffix += "_no_analogues" if args.no_analogues else ""
    suffix += "_no_single_atom_edits" if args.no_single_atom_edits else ""
    (RESULTS / f"edit_hit_ratio{suffix}.md").write_text(text)


if __name__ == "__main__":
    main()
