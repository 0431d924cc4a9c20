"""QM9 learning curve: the orbital-feature network vs a geometry-only network vs the cheap method.

For each N_train (default 1,000 and 10,000; the first N of the fixed training split), three
networks of the same architecture and size are trained with the same settings (config
``quantum_features/configs/qm9_orbital.yaml``), validated on the first ``--n-val`` molecules of
the validation split (early stopping) and evaluated on the test split:
- orbital: node/edge orbital features + Δ-learning on the HF/STO-3G energy, orbital energies
  and dipole (`ModelConfig.use_orbital_features=True`);
- geometry: baseline (a), element codes, distances and bond directions only;
- orbital-u0: the orbital network trained on U0 alone, as most QM9 models are (one model
  per target): what the multi-task loss costs U0. Trained with two seeds (run directories
  ``orbital-u0-<N>`` and ``orbital-u0-<N>-seed1``); the mean of the two is reported too, as
  the shipped models are ensembles;
- cheap: baseline (b), the HF/STO-3G values themselves: orbital energies and |μ| as they
  are ("raw"), and after a linear fit y ≈ a·x + b on the training molecules ("linear");
  for U0, the HF energy plus per-element references fitted on the training molecules.

Every training run checkpoints in ``benchmarks/checkpoints/qm9_learning_curve/<variant>-<N>/``
(committed: a session's machine is not kept, and training at 10,000 takes several 2-core
sessions) and the script resumes them: ``--max-minutes`` bounds one call (0: only report), and
calling again continues. The table (MAE on the test molecules, U0/HOMO/LUMO/gap in meV, dipole
in Debye) is printed and written to ``benchmarks/results/qm9_learning_curve.md`` after every
call (``--results`` names another file), marked partial while a run is unfinished.

``--ema-decay D`` trains both networks with an exponential moving average of their weights
(`quantum_features.averaging`; validated, selected and evaluated), in their own run directory
``qm9_learning_curve_ema<D>/`` and table ``qm9_learning_curve_ema<D>.md``, so the curve without
it stays as it was.

Run:  .venv/bin/python benchmarks/qm9_learning_curve.py --n-test 2000 [--n-train 1000 10000] [--max-minutes M]
      [--ema-decay 0.995] [--variants orbital geometry orbital-u0] [--results PATH]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from quantum_features.datasets import qm9_graphs
from quantum_features.model import TARGETS, cheap_intensive_of, element_counts
from quantum_features.spread import ensemble_errors
from quantum_features.train import REPORT_UNITS, evaluate, fit, load_config, load_model, run_wall_time, targets_of

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "quantum_features" / "configs" / "qm9_orbital.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "qm9_learning_curve.md"
# variant -> (row name, ModelConfig.use_orbital_features, trained targets (None: all of the
# config's), extra seeds: members of a small ensemble reported next to each member alone)
VARIANTS = {
    "orbital": ("orbital network", True, None, ()),
    "geometry": ("geometry network", False, None, ()),
    "orbital-u0": ("orbital network, U0 alone", True, ("energy",), (1,)),
}
COLUMNS = ["energy_mae_mev", "homo_mae_mev", "lumo_mae_mev", "gap_mae_mev", "dipole_mae_debye"]


def cheap_baselines(train: list, test: list) -> dict[str, dict[str, float]]:
    """MAE of HF/STO-3G values on `test`: raw, and linearly corrected on `train`."""

    def values(graphs, name):
        if name == "dipole":
            return np.array([float(g.dipole_cheap.norm()) for g in graphs])
        return cheap_intensive_of(graphs, name)

    truth_train, truth_test = targets_of(train, TARGETS), targets_of(test, TARGETS)
    raw, linear = {}, {}
    for name in ("homo", "lumo", "gap", "dipole"):
        suffix, factor = REPORT_UNITS[name]
        a, b = np.polyfit(values(train, name), truth_train[name], 1)
        x_test, y_test = values(test, name), truth_test[name]
        raw[f"{name}_mae_{suffix}"] = float(np.mean(np.abs(x_test - y_test))) * factor
        linear[f"{name}_mae_{suffix}"] = float(np.mean(np.abs(a * x_test + b - y_test))) * factor

    cheap_train = np.array([float(g.energy_cheap) for g in train])
    cheap_test = np.array([float(g.energy_cheap) for g in test])
    reference = np.linalg.lstsq(element_counts(train), truth_train["energy"] - cheap_train, rcond=None)[0]
    error = cheap_test + element_counts(test) @ reference - truth_test["energy"]
    linear["energy_mae_mev"] = float(np.mean(np.abs(error))) * REPORT_UNITS["energy"][1]
    raw["energy_mae_mev"] = float("nan")
    return {"raw": raw, "linear": linear}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=None, help="first N test molecules (default: all 10,831)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--max-minutes", type=float, default=None, help="training budget of this call")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="train with an EMA of the weights (per step; e.g. 0.995), in separate run directories")
    parser.add_argument("--runs", type=Path, default=None,
                        help="run directories (default benchmarks/checkpoints/qm9_learning_curve[_ema<D>])")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "data" / "qm9")
    parser.add_argument("--results", type=Path, default=None,
                        help="table file (default benchmarks/results/qm9_learning_curve[_ema<D>].md), e.g. "
                             "for a call with some variants or sizes only, which would shorten the main table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    base = replace(load_config(CONFIG), ema_decay=args.ema_decay)
    suffix = "" if args.ema_decay is None else f"_ema{args.ema_decay:g}"
    if args.runs is None:
        args.runs = ROOT / "benchmarks" / "checkpoints" / f"qm9_learning_curve{suffix}"
    results = args.results or RESULTS.with_name(f"qm9_learning_curve{suffix}.md")
    started = time.perf_counter()

    test = qm9_graphs("test", args.n_test, args.cache_dir / "test.h5", progress=True)
    val = qm9_graphs("val", args.n_val, args.cache_dir / "val.h5", progress=True)
    rows, complete = [], True
    for n in sorted(args.n_train):
        spent = (time.perf_counter() - started) / 60
        if args.max_minutes is not None and spent >= args.max_minutes and not any(
            (args.runs / f"{variant}-{n}" / "best.pt").exists() for variant in args.variants
        ):
            # Out of time before this size started: featurising its training set would only delay the report.
            complete = False
            rows.append(("not started (next call)", n, {}, None, None))
            continue
        train = qm9_graphs("train", n, args.cache_dir / "train.h5", progress=True)
        for variant in args.variants:
            label, orbital, only, extra_seeds = VARIANTS[variant]
            targets = base.targets if only is None else {t: base.targets[t] for t in only}
            members = []
            for seed in (base.seed, *extra_seeds):
                out = args.runs / (f"{variant}-{n}" if seed == base.seed else f"{variant}-{n}-seed{seed}")
                budget = None
                if args.max_minutes is not None:
                    budget = max(args.max_minutes - (time.perf_counter() - started) / 60, 0.0)
                config = replace(base, out_dir=str(out), n_train=n, n_val=args.n_val, max_minutes=budget, seed=seed,
                                 model={**base.model, "use_orbital_features": orbital}, targets=targets)
                if budget == 0.0:  # no time left: report the run as it stands
                    summary = _summary_of(out)
                else:
                    summary = fit(config, train, val)
                complete &= summary["finished"]
                if (out / "best.pt").exists():
                    model = load_model(out / "best.pt")
                    members.append(model)
                    # trained targets only (runs from before models recorded them count as all-target)
                    metrics = evaluate(model, test, targets=tuple(targets))
                    status = "" if summary["finished"] else f" (unfinished, epoch {summary['epoch']})"
                    name = label if not extra_seeds else f"{label}, seed {seed}"
                    rows.append((f"{name}{status}", n, metrics, summary, out))
            if len(members) > 1:
                errors = ensemble_errors(members, test, batch_size=64)
                metrics = {f"{t}_mae_{REPORT_UNITS[t][0]}": float(np.mean(errors[t]["error"])) * REPORT_UNITS[t][1]
                           for t in targets}
                rows.append((f"{label}, mean of {len(members)} seeds", n, metrics, None, None))
        cheap = cheap_baselines(train, test)
        rows.append(("HF/STO-3G raw", n, cheap["raw"], None, None))
        rows.append(("HF/STO-3G + linear fit", n, cheap["linear"], None, None))

    lines = [
        f"QM9 test MAE ({len(test)} test molecules, validation {len(val)}; {os.cpu_count()} CPU cores)",
        "",
        "| model | N_train | U0 (meV) | HOMO (meV) | LUMO (meV) | gap (meV) | dipole (D) | epochs (best) | train time (min) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, n, metrics, summary, run in rows:
        cells = " | ".join("–" if np.isnan(metrics.get(c, np.nan)) else f"{metrics[c]:.1f}" if "mev" in c
                           else f"{metrics[c]:.3f}" for c in COLUMNS)
        if summary is not None:
            minutes, _ = run_wall_time(run)
            extra = f"{summary['epoch']} ({summary['best_epoch']}) | {minutes:.0f}"
        else:
            extra = "– | –"
        lines.append(f"| {name} | {n} | {cells} | {extra} |")
    lines += ["", "Targets (issue): U0 ≤ 43 meV at 1,000 and ≤ 10 meV at 10,000 training molecules; gap ≤ 100 meV at 10,000."]
    text = "\n".join(lines)
    print(text)
    command = (f"`.venv/bin/python benchmarks/qm9_learning_curve.py --n-train {' '.join(map(str, sorted(args.n_train)))}"
               f"{'' if args.n_test is None else f' --n-test {args.n_test}'}"
               f"{'' if args.ema_decay is None else f' --ema-decay {args.ema_decay:g}'}"
               f"{'' if set(VARIANTS) <= set(args.variants) else ' --variants ' + ' '.join(args.variants)}"
               f"{'' if args.results is None else f' --results {args.results}'}`")
    if not complete or not set(VARIANTS) <= set(args.variants):
        text = ("**Partial run**: some trainings are unfinished (or a variant was left out); the same "
                "command resumes them from their committed checkpoints.\n\n" + text)
        print("\nSome runs are unfinished: run the same command again to resume them.")
    results.parent.mkdir(parents=True, exist_ok=True)
    title = "# QM9 learning curve" + ("" if args.ema_decay is None else f" (EMA of the weights, decay {args.ema_decay:g})")
    results.write_text(title + "\n\n" + text + f"\n\nCommand: {command}\n")


def _summary_of(run: Path) -> dict:
    """The progress of a run from its last checkpoint, without training."""
    last = run / "last.pt"
    if not last.exists():
        return {"finished": False, "epoch": 0, "best_epoch": -1}
    progress = torch.load(last, map_location="cpu", weights_only=False)["progress"]
    return {"finished": progress["finished"], "epoch": progress["epoch"], "best_epoch": progress["best_epoch"]}


if __name__ == "__main__":
    main()
