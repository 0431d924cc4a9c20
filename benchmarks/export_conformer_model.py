"""Export conformer-trained runs as the shipped conformer-energy ensemble, with its model card.

Takes the ``best.pt`` of each run directory (ensemble members), writes
``quantum_features/weights/conformer_<i>.pt`` (inference-only) — the files
`quantum_features.calculator` (`rank_conformers`, `OrbNetCalculator`, `optimize_geometry`)
loads by default — and ``quantum_features/weights/CONFORMER_MODEL_CARD.md`` with the labels,
split, validation metrics, training command and wall time read from the runs themselves.
Test-set figures come from ``benchmarks/conformer_ranking.py`` (run it after exporting).

Run:  .venv/bin/python benchmarks/export_conformer_model.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from quantum_features.conformer_training import ConformerTrainConfig, split_labels, training_labels
from quantum_features.labelling import LabelSet
from quantum_features.model import count_parameters
from quantum_features.predict import WEIGHTS_DIR
from quantum_features.train import export_weights, load_model, run_wall_time

ROOT = Path(__file__).resolve().parents[1]
CARD = WEIGHTS_DIR / "CONFORMER_MODEL_CARD.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="run directories with best.pt and config.yaml")
    args = parser.parse_args()

    for old in WEIGHTS_DIR.glob("conformer_*.pt"):
        old.unlink()
    members = []
    for i, run in enumerate(args.runs):
        state = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
        config = ConformerTrainConfig(**state["train_config"])
        path = export_weights(run / "best.pt", WEIGHTS_DIR / f"conformer_{i}.pt", targets=("energy",), val=state["val"],
                              split={"test_fraction": config.test_fraction, "val_fraction": config.val_fraction,
                                     "split_seed": config.split_seed, "labels": Path(config.labels).name})
        minutes, epochs = run_wall_time(run)
        members.append((i, run, state, config, path, minutes, epochs))

    _, _, _, config, _, _, _ = members[0]
    labels = training_labels(config, root=ROOT)  # an absolute path stays as it is
    train, val, test = split_labels(labels, config.test_fraction, config.val_fraction, config.split_seed)
    model = load_model(members[0][4])

    def describe(part: LabelSet) -> str:
        kinds = part.frame["kind"].value_counts()
        return (f"{part.frame['molecule_id'].nunique()} molecules, {kinds.get('conformer', 0)} conformers + "
                f"{kinds.get('distorted', 0)} distorted structures")

    lines = [
        "# Model card: conformer energies and forces (shipped ensemble `conformer_*.pt`)", "",
        "- **What it predicts**: the total energy (Hartree; relative conformer energies in kcal/mol) and forces of a "
        f"neutral closed-shell organic molecule at the reference level **{labels.level}**, from an HF/STO-3G/df "
        "calculation (orbital features + its analytic gradient) and the network's correction.",
        "- **Forces**: −∇E_cheap (analytic)"
        + (" − ∇E_D3 (analytic)" if config.dispersion else "")
        + " − ∂E_net/∂R (autograd through the bond geometry); the dependence of the "
        "orbital features on the positions is not differentiated (see `quantum_features.conformer_training`).",
        "- **Start**: " + ", ".join(
            f"member {i} from `{Path(c.init).name if c.init else 'none (from scratch)'}`" for i, _, _, c, _, _, _ in members)
        + " (QM9 orbital models), fine-tuned on energies, relative energies within a molecule and forces "
        f"(loss weights {config.weights}, relative energies centred per {config.relative_within.replace('_', ' ')}; "
        f"checkpoint selected with weights {config.selection_weights or config.weights} on the validation "
        "errors relative to the starting model's).",
        f"- **Dispersion**: {config.dispersion or 'none'}"
        + (" — the labels' own D3 term, added exactly (`quantum_features.dispersion`), not learned"
           if config.dispersion else "")
        + ("; the QM9 model's energy correction was zeroed before fine-tuning." if config.zero_energy_correction
           else "."),
        f"- **Labels**: `quantum_features/data/{Path(config.labels).name}` (data card `CONFORMER_LABELS.md`): "
        f"{len(labels)} structures of {labels.frame['molecule_id'].nunique()} molecules"
        + (f" (the file's first {config.n_structures}: `n_structures`)." if config.n_structures else "."),
        f"- **Split** (`split_labels`, stable hash of molecule ids, test {config.test_fraction:.0%}, validation "
        f"{config.val_fraction:.0%} of the rest, seed {config.split_seed}): train {describe(train)}; validation "
        f"{describe(val)}; test {describe(test)} (never used in training or model selection).",
        "- **Domain**: elements of the training molecules "
        f"({', '.join(_elements(train))}; molecules with other elements are refused, since the energy "
        "references and corrections of those were never fitted at this level); this is a small "
        "data set — treat rankings of molecules unlike the training set with care and look at "
        "`uncertainty_kcal_mol` (ensemble spread)." + _rare_elements(train),
        f"- **Architecture**: `OrbitalPropertyNet`, {count_parameters(model):,} parameters per member, "
        f"config `{model.config.to_dict()}`.",
        f"- **Files**: {', '.join(f'`{m[4].name}`' for m in members)} "
        f"({sum(m[4].stat().st_size for m in members) / 2**20:.1f} MiB in total).", "",
        "## Validation (held-out molecules used for early stopping)", "",
        "| member | epochs (best) | median R² | median Spearman ρ | conformer relative MAE (kcal/mol) | "
        "force MAE (kcal/mol/Å) | "
        "train time (min) |", "|---|---|---|---|---|---|---|",
    ]
    for i, run, state, _, _, minutes, epochs in members:
        v = state["val"]
        lines.append(f"| {i} ({run.name}) | {epochs} ({state['epoch']}) | {v['median_r2']:.3f} | "
                     f"{v['median_spearman']:.3f} | {v.get('conformer_relative_mae_kcal_mol', v['relative_mae_kcal_mol']):.2f} | "
                     f"{v['force_mae_kcal_mol_per_angstrom']:.2f} | {minutes:.0f} |")
    lines += ["", "## Test molecules", ""]
    ranking = ROOT / "benchmarks" / "results" / "conformer_ranking.md"
    written = ranking.read_text().splitlines() if ranking.exists() else []
    # The benchmark's tables and the lines between them (e.g. the sub-table of F molecules).
    first = next((i for i, line in enumerate(written) if line.startswith("|")), len(written))
    table = [line.rstrip() for line in written[first:]]
    while table and not table[-1]:
        table.pop()
    left_out = [line for line in written if line.startswith("Left out")]
    if table:  # the benchmark's own table, as it last wrote it (rerun it after re-exporting)
        lines += ["Against MMFF94, GFN2-xTB and the cheap level, as last written to "
                  "`benchmarks/results/conformer_ranking.md` by `benchmarks/conformer_ranking.py`:", "",
                  *[item for line in left_out for item in (line, "")], *table]
    else:
        lines.append("Not measured yet: run `benchmarks/conformer_ranking.py` (writes `benchmarks/results/conformer_ranking.md`).")
    lines += ["", "## Training", ""]
    for i, run, _, _, _, minutes, epochs in members:
        lines.append(f"- member {i}: `python -m quantum_features.conformer_training {run / 'config.yaml'}` "
                     f"({epochs} epochs, {minutes:.0f} min on this project's 2-core CPU machine).")
    lines += ["", f"Exported with `.venv/bin/python benchmarks/export_conformer_model.py "
              f"{' '.join(str(m[1]) for m in members)}`.", ""]
    CARD.write_text("\n".join(lines))
    print("\n".join(lines))


def _elements(labels: LabelSet) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in sorted({int(z) for numbers in labels.numbers for z in numbers})]


def _rare_elements(labels: LabelSet, fewer_than: int = 5) -> str:
    """A warning naming the elements carried by fewer than `fewer_than` training molecules."""
    from ase.data import chemical_symbols

    molecules: dict[int, set] = {}
    for numbers, molecule in zip(labels.numbers, labels.frame["molecule_id"]):
        for z in {int(z) for z in numbers}:
            molecules.setdefault(z, set()).add(molecule)
    rare = [f"{chemical_symbols[z]} ({len(ids)})" for z, ids in sorted(molecules.items()) if len(ids) < fewer_than]
    if not rare:
        return ""
    return (f" Elements in fewer than {fewer_than} training molecules (count): {', '.join(rare)}; molecules "
            "with them may be ranked less reliably (the benchmark below reports its F molecules apart).")


if __name__ == "__main__":
    main()
