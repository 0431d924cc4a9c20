"""Two conformer ensembles on the same validation and test molecules: is a retrained one better?

Both are scored on the molecules both accept (an ensemble trained without some element refuses
its molecules), with the split of the first ensemble's config; the molecules only the first
accepts are then scored for it alone (e.g. those with an element newly added to training).

Run:  .venv/bin/python benchmarks/compare_conformer_ensembles.py --new RUN_DIR ... --old RUN_DIR ...
      (RUN_DIR: best.pt; the config.yaml of the first --new directory gives the split and labels)
Earlier shipped checkpoints come from git, e.g. ``git show c051b47:benchmarks/checkpoints/conformers/best.pt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from quantum_features.conformer_training import (
    ConformerTrainConfig,
    evaluate_conformers,
    label_graphs,
    run_splits,
)
from quantum_features.predict import split_refused_molecules
from quantum_features.train import load_model

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ("median_r2", "median_spearman", "conformer_relative_mae_kcal_mol", "n_molecules")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new", type=Path, nargs="+", required=True, help="run directories of the new ensemble")
    parser.add_argument("--old", type=Path, nargs="+", required=True, help="run directories of the old ensemble")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ConformerTrainConfig.from_file(args.new[0] / "config.yaml")
    _, val, test = run_splits(config, root=ROOT)
    new = [load_model(run / "best.pt").eval() for run in args.new]
    old = [load_model(run / "best.pt").eval() for run in args.old]
    cache = ROOT / config.feature_cache

    def row(name: str, subset: str, label: str, metrics: dict) -> str:
        values = " | ".join(str(metrics[k]) if k == "n_molecules" else f"{metrics[k]:.3f}" for k in SHOWN)
        return f"| {name} | {subset} | {label} | {values} |"

    print("| molecules | subset | ensemble | " + " | ".join(SHOWN) + " |\n|" + "---|" * (len(SHOWN) + 3))
    for name, part in (("validation", val), ("test", test)):
        accepted_by_new, _ = split_refused_molecules(new, part)
        both, _ = split_refused_molecules(old, accepted_by_new)
        graphs = label_graphs(both, cache, n_workers=1)
        for label, models in (("old", old), ("new", new)):
            print(row(name, "accepted by both", label, evaluate_conformers(models, graphs)), flush=True)
        only_new = accepted_by_new.subset(
            np.flatnonzero(~accepted_by_new.frame["molecule_id"].isin(both.frame["molecule_id"])))
        if len(only_new):
            graphs = label_graphs(only_new, cache, n_workers=1)
            print(row(name, "accepted by the new only", "new", evaluate_conformers(new, graphs)), flush=True)


if __name__ == "__main__":
    main()
