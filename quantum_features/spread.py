"""When does the shipped ensemble disagree with itself more than usual?

The `*_std_*` columns of `predict_properties` are the spread of independently trained
networks. Its absolute size means little to a user (is 0.3 eV on the gap a lot?), so it is
compared with what the same ensemble shows on QM9 molecules it was *not* trained on: above
a high percentile of that reference (`SPREAD_QUANTILE`, recorded in the file), ``predict_properties`` adds a warning. On the shipped
ensemble such rows have errors several times the average (measured by this command and
written into the thresholds file), so the flag marks predictions to check, not a calibrated
error bar.

The reference is computed by

    .venv/bin/python -m quantum_features.spread --split train --start 10000 --stop 15000

(the shipped members were trained on the first 10,000 training molecules, so molecules
10,000-14,999 of that split are unseen by them; any range of an unseen split works) and written
to ``quantum_features/weights/qm9_orbital_spread.json`` next to the weights it belongs to.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch


__all__ = ["SPREAD_FILE", "SPREAD_QUANTILE", "UNIT_SYMBOLS", "SpreadReference", "calibrate_spread", "ensemble_errors",
           "load_spread_reference", "ordinal_percentile"]

SPREAD_FILE = Path(__file__).parent / "weights" / "qm9_orbital_spread.json"
SPREAD_QUANTILE = 0.99
#: Unit suffix of an output column (``gap_std_ev`` -> ``ev``) -> its symbol in messages and tables.
UNIT_SYMBOLS = {"hartree": "Hartree", "ev": "eV", "debye": "D"}


def ordinal_percentile(quantile: float) -> str:
    """0.99 -> '99th', 0.95 -> '95th', 0.5 -> '50th' (for messages that name the reference)."""
    value = 100 * quantile
    number = f"{value:g}"
    if value != int(value) or int(value) % 100 in (11, 12, 13):
        return number + "th"
    return number + {1: "st", 2: "nd", 3: "rd"}.get(int(value) % 10, "th")


@dataclass(frozen=True)
class SpreadReference:
    """Spread thresholds of the shipped ensemble and the quantile they were measured at."""

    quantile: float = SPREAD_QUANTILE
    thresholds: dict[str, float] = field(default_factory=dict)  # std column -> threshold in its unit

    @property
    def percentile(self) -> str:
        return ordinal_percentile(self.quantile)


def _target_of(output: str) -> str:
    """Model output -> QM9 label it is trained on (the network predicts the dipole vector; QM9 has its norm)."""
    return "dipole" if output == "dipole_norm" else output


def ensemble_errors(ensemble: list, graphs: list, batch_size: int = 100) -> dict[str, dict[str, np.ndarray]]:
    """Per QM9 target, the ensemble mean's absolute error and the members' spread on each graph.

    Args:
        ensemble: trained `OrbitalPropertyNet` members (the spread is NaN with only one).
        graphs: QM9 graphs with ``y_<target>`` (`quantum_features.datasets.qm9_graphs`).

    Returns:
        target (``energy``, ``homo``, ``lumo``, ``gap``, ``dipole``) -> ``{"error", "std"}``, arrays
        over `graphs` in the model's units (Hartree, eV, Debye; the dipole is its norm).
    """
    from quantum_features.predict import OUTPUT_COLUMNS, predict_graphs
    from quantum_features.train import targets_of

    rows = predict_graphs(ensemble, graphs, batch_size=batch_size)
    targets = {name: _target_of(name) for name in OUTPUT_COLUMNS}
    truth = targets_of(graphs, tuple(targets.values()))
    result = {}
    for name, (column, std_column) in OUTPUT_COLUMNS.items():
        mean = np.array([r[column] for r in rows], dtype=float)
        result[targets[name]] = {"error": np.abs(mean - truth[targets[name]]),
                                 "std": np.array([r[std_column] for r in rows], dtype=float)}
    return result


def calibrate_spread(ensemble: list, graphs: list, quantile: float = SPREAD_QUANTILE,
                     batch_size: int = 100) -> dict[str, dict[str, float]]:
    """Per output column: the `quantile` of the ensemble spread over `graphs`, and the mean
    absolute error of the ensemble mean on all graphs and on those whose spread is above it.

    Args:
        ensemble: two or more trained `OrbitalPropertyNet` members.
        graphs: QM9 graphs with ``y_<target>`` (`quantum_features.datasets.qm9_graphs`),
            none of them seen in the members' training.

    Returns:
        std column (e.g. ``gap_std_ev``) -> {"threshold", "mae_all", "mae_above"} in that column's unit.
    """
    from quantum_features.predict import OUTPUT_COLUMNS

    if len(ensemble) < 2:
        raise ValueError("a spread needs an ensemble of at least two members")
    errors = ensemble_errors(ensemble, graphs, batch_size=batch_size)
    result = {}
    for name, (_, std_column) in OUTPUT_COLUMNS.items():
        entry = errors[_target_of(name)]
        error, std = entry["error"], entry["std"]
        ok = np.isfinite(error)
        threshold = float(np.quantile(std[ok], quantile))
        above = ok & (std > threshold)
        result[std_column] = {"threshold": threshold, "mae_all": float(error[ok].mean()),
                              "mae_above": float(error[above].mean()) if above.any() else float("nan")}
    return result


def load_spread_reference(path: Path = SPREAD_FILE) -> SpreadReference:
    """The spreads above which the shipped ensemble's predictions are flagged (no thresholds if no file)."""
    if not path.exists():
        return SpreadReference()
    record = json.loads(path.read_text())
    return SpreadReference(float(record["quantile"]),
                           {column: entry["threshold"] for column, entry in record["columns"].items()})


_CARD_HEADING = "## Ensemble spread reference"


def _column_label(std_column: str) -> str:
    """``gap_std_ev`` -> ``gap (eV)``, ``homo_std_ev`` -> ``HOMO (eV)``."""
    name, _, unit = std_column.partition("_std_")
    return f"{name.upper() if name in ('homo', 'lumo') else name} ({UNIT_SYMBOLS.get(unit, unit)})"


def write_model_card_section(record: dict[str, Any], card: Path = SPREAD_FILE.parent / "MODEL_CARD.md") -> None:
    """Replace (or add) the spread section of the shipped model card with `record`'s figures."""
    text = card.read_text()
    if _CARD_HEADING in text:  # the section is the card's last
        text = text[:text.index(_CARD_HEADING)].rstrip("\n") + "\n"
    lines = ["", _CARD_HEADING, "",
             f"`{SPREAD_FILE.name}`: the {ordinal_percentile(record['quantile'])} percentile of each `*_std_*` column over "
             f"the reference molecules ({record['reference']}), with the ensemble mean's MAE on all of them and on those above it. "
             "`predict_properties` flags rows above it in `warning`. "
             f"Made with `.venv/bin/{record['command']}`.", "",
             "| output | percentile of spread | MAE, all | MAE, spread above it |", "|---|---|---|---|"]
    for column, entry in record["columns"].items():
        lines.append(f"| {_column_label(column)} | {entry['threshold']:.3g} | {entry['mae_all']:.3g} | "
                     f"{entry['mae_above']:.3g} |")
    card.write_text(text + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    from quantum_features.datasets import qm9_graphs, qm9_subset
    from quantum_features.predict import default_model_paths, load_ensemble

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--start", type=int, default=10000,
                        help="first molecule of the split (skip the members' training molecules: the first 10,000)")
    parser.add_argument("--stop", type=int, default=15000)
    parser.add_argument("--cache-dir", type=Path, default=Path("data/qm9"))
    parser.add_argument("--out", type=Path, default=SPREAD_FILE)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    trained = {int(i) for i in qm9_subset(args.split, args.start)} if args.start else set()
    graphs = [g for g in qm9_graphs(args.split, args.stop, args.cache_dir / f"{args.split}.h5", progress=True)
              if int(g.qm9_id) not in trained]
    paths = default_model_paths()
    columns = calibrate_spread(load_ensemble(paths), graphs)
    record: dict[str, Any] = {
        "quantile": SPREAD_QUANTILE,
        "reference": f"QM9 {args.split} split, molecules {args.start}-{args.stop - 1} (first {args.stop}), "
                     f"{len(graphs)} featurised; not in the members' training data",
        "members": [p.name for p in paths],
        "command": f"python -m quantum_features.spread --split {args.split} --start {args.start} --stop {args.stop}",
        "columns": columns,
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    if args.out == SPREAD_FILE:
        write_model_card_section(record)
    print(f"{'column':<20} {'threshold':>10} {'MAE all':>10} {'MAE above':>10}")
    for column, entry in columns.items():
        print(f"{column:<20} {entry['threshold']:>10.4f} {entry['mae_all']:>10.4f} {entry['mae_above']:>10.4f}")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
