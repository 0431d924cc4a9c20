"""Each conformer-model member alone vs ensembles of them, on the validation and test molecules.

Shows how much of the ranking quality comes from ensembling, and picks the ensemble size on
the validation molecules (the test molecules are printed for the record, not for choosing).
Molecules with elements the models refuse are left out, as in `conformer_ranking.py`.

Run:  .venv/bin/python benchmarks/conformer_ensemble_size.py [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
RUNS = [ROOT / "benchmarks" / "checkpoints" / name for name in ("conformers", "conformers_1", "conformers_2", "conformers_3")]
SHOWN = ("median_r2", "median_spearman", "conformer_relative_mae_kcal_mol", "n_molecules")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="*", default=RUNS, help="run directories (best.pt, config.yaml)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ConformerTrainConfig.from_file(args.runs[0] / "config.yaml")
    _, val, test = run_splits(config, root=ROOT)
    models = [load_model(run / "best.pt").eval() for run in args.runs]
    groups = [(f"member {i}", [m]) for i, m in enumerate(models)]
    groups += [(f"members 0-{k - 1}", models[:k]) for k in range(2, len(models) + 1)]
    print("| molecules | models | " + " | ".join(SHOWN) + " |\n|" + "---|" * (len(SHOWN) + 2))
    for name, part in (("validation", val), ("test", test)):
        kept, _ = split_refused_molecules(models, part)
        graphs = label_graphs(kept, ROOT / config.feature_cache, n_workers=1)
        for label, group in groups:
            metrics = evaluate_conformers(group, graphs)
            print(f"| {name} | {label} | " + " | ".join(f"{metrics[k]:.3f}" if k != "n_molecules" else str(metrics[k])
                                                        for k in SHOWN) + " |", flush=True)


if __name__ == "__main__":
    main()
