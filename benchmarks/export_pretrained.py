"""Export trained runs as the shipped ensemble and write its model card.

Takes the ``best.pt`` of each run directory (ensemble members, e.g. different seeds),
writes ``quantum_features/weights/qm9_orbital_<i>.pt`` (inference-only, float32), evaluates
each member and the ensemble mean on the first ``--n-test`` molecules of the QM9 test split,
and writes ``quantum_features/weights/MODEL_CARD.md`` with the data, split, level of theory,
metrics, training commands and wall times read from the runs themselves.

Run:  .venv/bin/python benchmarks/export_pretrained.py RUN_DIR [RUN_DIR ...] [--n-test N]
      (``--weights-dir DIR`` writes elsewhere, e.g. to look at a card before shipping it)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import yaml

from quantum_features.datasets import qm9_graphs
from quantum_features.model import count_parameters
from quantum_features.predict import WEIGHTS_DIR
from quantum_features.spread import SPREAD_FILE, ensemble_errors
from quantum_features.train import REPORT_UNITS, evaluate, export_weights, load_model, run_wall_time

COLUMNS = ["energy_mae_mev", "homo_mae_mev", "lumo_mae_mev", "gap_mae_mev", "dipole_mae_debye"]


#: Heavy-atom bins of the size table: QM9 holds few small molecules (most have 9 heavy atoms).
SIZE_BINS = [(1, 6, "≤ 6"), (7, 7, "7"), (8, 8, "8"), (9, 9, "9")]


def report_mae(errors: dict[str, dict[str, np.ndarray]], inside: np.ndarray | slice = slice(None)) -> dict[str, float]:
    """`COLUMNS` -> mean of `spread.ensemble_errors` over the selected graphs, in report units (meV, D)."""
    return {f"{t}_mae_{REPORT_UNITS[t][0]}": float(e["error"][inside].mean()) * REPORT_UNITS[t][1]
            for t, e in errors.items()}


def mae_by_size(errors: dict[str, dict[str, np.ndarray]], graphs: list) -> list[str]:
    """Markdown rows: the ensemble mean's MAE on `graphs` per number of heavy atoms."""
    heavy = np.array([int((g.z > 1).sum()) for g in graphs])
    lines = []
    for low, high, label in SIZE_BINS:
        inside = (heavy >= low) & (heavy <= high)
        if inside.any():
            lines.append(row(f"{label} ({int(inside.sum())} molecules)", report_mae(errors, inside)))
    return lines


def row(name: str, metrics: dict[str, float]) -> str:
    return f"| {name} | " + " | ".join(f"{metrics[c]:.1f}" if "mev" in c else f"{metrics[c]:.3f}" for c in COLUMNS) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/qm9"))
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR,
                        help="where the members and card go (default: the shipped package data)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    weights_dir = args.weights_dir
    weights_dir.mkdir(parents=True, exist_ok=True)
    for old in weights_dir.glob("qm9_orbital_*.pt"):
        old.unlink()
    test = qm9_graphs("test", args.n_test, args.cache_dir / "test.h5", progress=True)
    members, lines = [], []
    for i, run in enumerate(args.runs):
        config = yaml.safe_load((run / "config.yaml").read_text())
        path = export_weights(run / "best.pt", weights_dir / f"qm9_orbital_{i}.pt", train_config=config)
        model = load_model(path)
        minutes, epochs = run_wall_time(run)
        members.append((run, config, model, minutes, epochs, evaluate(model, test)))
    errors = ensemble_errors([m[2] for m in members], test, batch_size=64)
    ensemble = report_mae(errors)
    first = members[0][1]
    size_mb = sum((weights_dir / f"qm9_orbital_{i}.pt").stat().st_size for i in range(len(members))) / 2**20
    lines += [
        "# Model card: QM9 orbital-feature property network (shipped ensemble)",
        "",
        "- **What it predicts**: U0-like total energy at 0 K (Hartree), HOMO, LUMO, HOMO–LUMO gap (eV) and",
        "  the dipole moment (vector; its norm is trained, Debye) of neutral closed-shell organic molecules.",
        "- **Inputs**: orbital features of an HF/STO-3G calculation with density fitting (`hf/sto-3g/df`,",
        "  `quantum_features.features`) on the given 3D geometry (SMILES: lowest MMFF94 conformer).",
        "- **Labels**: QM9 (Ramakrishnan et al. 2014; package `qm9pack`), B3LYP/6-31G(2df,p) on B3LYP geometries.",
        f"- **Training data**: the first {first['n_train']} molecules of the fixed training split "
        f"(`qm9_subset('train', {first['n_train']})`); early stopping on the first {first['n_val']} validation molecules.",
        "  Split: molecules ordered by SHA-256 of `qm9-<id>`; 110,000 train / 10,000 val / 10,831 test.",
        "- **Domain**: elements H, C, N, O, F (others are refused); at most 9 heavy atoms in training —",
        "  larger molecules are extrapolation and `predict_properties` says so in its `warning` column.",
        "  Small molecules are rare in QM9 (most have 9 heavy atoms): the size table below shows the",
        "  test errors by size.",
        f"- **Architecture**: `quantum_features.model.OrbitalPropertyNet`, {count_parameters(members[0][2]):,} parameters per member, "
        f"config `{first['model']}`.",
        f"- **Ensemble**: {len(members)} members (different seeds); the `*_std_*` columns are their spread, "
        "an uncertainty indication, not a calibrated error bar.",
        f"- **Files**: `quantum_features/weights/qm9_orbital_*.pt`, {size_mb:.1f} MiB in total.",
        "",
        f"## Test metrics (MAE on {len(test)} molecules of the test split)",
        "",
        "| model | U0 (meV) | HOMO (meV) | LUMO (meV) | gap (meV) | dipole (D) |",
        "|---|---|---|---|---|---|",
    ]
    for i, (_, config, _, _, _, metrics) in enumerate(members):
        lines.append(row(f"member {i} (seed {config['seed']})", metrics))
    lines.append(row("ensemble mean", ensemble))
    lines += ["", "Ensemble mean by molecule size (same test molecules):", "",
              "| heavy atoms | U0 (meV) | HOMO (meV) | LUMO (meV) | gap (meV) | dipole (D) |", "|---|---|---|---|---|---|"]
    lines += mae_by_size(errors, test)
    lines += ["", "## Training", ""]
    for i, (run, config, _, minutes, epochs, _) in enumerate(members):
        lines.append(f"- member {i}: `.venv/bin/molops train quantum_features/configs/qm9_orbital.yaml "
                     f"--n-train {config['n_train']} --seed {config['seed']} --out-dir {run}`: {epochs} epochs, "
                     f"{minutes:.0f} min on {os.cpu_count()} CPU cores.")
    lines += ["", f"Exported with `.venv/bin/python benchmarks/export_pretrained.py {' '.join(map(str, args.runs))}"
              f"{'' if args.n_test is None else f' --n-test {args.n_test}'}`.", ""]
    (weights_dir / "MODEL_CARD.md").write_text("\n".join(lines))
    spread_file = weights_dir / SPREAD_FILE.name
    if spread_file.exists():  # the spread reference belongs to the members it was measured on
        spread_file.unlink()
    n_train = max(m[1]["n_train"] for m in members)
    print("new members: measure their spread reference on molecules they were not trained on with "
          f"`.venv/bin/python -m quantum_features.spread --split train --start {n_train} --stop {n_train + 5000}`")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
