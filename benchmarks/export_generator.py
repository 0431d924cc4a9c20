"""Export the trained RetMol generator into package data and write its model card.

Reads the fusion run's ``generator.pt`` (BART + fusion, fp16) and both runs' configs and
metrics, copies the generator to ``generation/weights/retmol_moses.pt`` and writes
``generation/weights/MODEL_CARD.md``: data, objectives, sizes, training commands, steps,
molecules seen, wall time and the last validation metrics, read from the runs themselves.

Run:  .venv/bin/python benchmarks/export_generator.py [--seq2seq-run runs/seq2seq_moses] [--fusion-run runs/fusion_moses]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd
import torch
import yaml

from generation.fusion import RetrievalGenerator
from generation.optimize import default_generator_path


def _metrics_at(run: Path, step: int) -> dict:
    """The metrics.csv row of `step` (the evaluation that chose the exported weights)."""
    frame = pd.read_csv(run / "metrics.csv")
    rows = frame[frame["step"] == step]
    return (rows if len(rows) else frame).iloc[-1].to_dict()


def _config_file(run: Path) -> str:
    """The shipped config file whose ``out_dir`` is `run`."""
    for path in sorted(Path("generation/configs").glob("*.yaml")):
        if Path(str(yaml.safe_load(path.read_text()).get("out_dir", ""))) == run:
            return str(path)
    return f"{run}/config.yaml"


def _fusion_history(run: Path) -> tuple[str, float]:
    """Training command(s) of the fusion run, following `init_fusion` warm starts, and total hours."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    metrics = pd.read_csv(run / "metrics.csv")
    line = f"`molops train-fusion {_config_file(run)}`: {int(metrics['step'].iloc[-1])} steps of {config['batch_size']}, " \
           f"{metrics['train_hours'].iloc[-1]:.2f} h"
    hours = float(metrics["train_hours"].iloc[-1])
    if config.get("init_fusion"):
        earlier, earlier_hours = _fusion_history(Path(config["init_fusion"]).parent)
        return f"{earlier}; then {line}, warm-started from `{config['init_fusion']}`", hours + earlier_hours
    return line, hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq2seq-run", type=Path, default=Path("runs/seq2seq_moses"))
    parser.add_argument("--fusion-run", type=Path, default=Path("runs/fusion_moses"))
    args = parser.parse_args()
    source = args.fusion_run / "generator.pt"
    generator = RetrievalGenerator.load(source)  # refuses a broken or foreign file
    target = default_generator_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    s2s_config = yaml.safe_load((args.seq2seq_run / "config.yaml").read_text())
    fusion_config = yaml.safe_load((args.fusion_run / "config.yaml").read_text())
    bart_step = int(torch.load(args.seq2seq_run / "best.pt", map_location="cpu", weights_only=False)["metadata"]["step"])
    s2s = _metrics_at(args.seq2seq_run, bart_step)
    fusion = _metrics_at(args.fusion_run, int(generator.metadata["step"]))
    fusion_history, fusion_hours = _fusion_history(args.fusion_run)
    n_bart = sum(p.numel() for p in generator.seq2seq.parameters())
    n_fusion = sum(p.numel() for p in generator.fusion.parameters())
    card = f"""# RetMol-style generator trained on MOSES (`retmol_moses.pt`)

Weights in fp16 ({target.stat().st_size / 2**20:.1f} MiB): a SMILES BART ({n_bart / 1e6:.2f}M parameters; {s2s_config['model']})
and RetMol's information-fusion module ({n_fusion / 1e6:.2f}M parameters; {fusion_config['fusion']}).

## Data
- Tokens: `generation/vocab.txt` (regex atom-level, from MOSES train + test). Molecules are read without
  stereochemistry and neutral, as in MOSES (H C N O F S Cl Br; up to ~55 tokens).
- BART: MOSES training split (1,584,663 molecules, `molsets`), seeded random order; input = randomised SMILES
  (p = {s2s_config['random_smiles_prob']}) with {s2s_config['mask_prob']:.0%} of tokens span-masked, target = canonical SMILES.
  Validation: the first {s2s_config['n_val']} MOSES test molecules.
- Fusion: {fusion_config['n_pairs']} MOSES training molecules, each with its {fusion_config['k'] + 1} nearest other training molecules
  (Tanimoto, Morgan r = 2); target = the nearest, exemplars = the next {fusion_config['k']}; BART frozen.

## Training (CPU, 2 cores, bfloat16 autocast)
- `molops train-generator generation/configs/seq2seq_moses.yaml` (resumable): {int(s2s['step'])} steps, {int(s2s['examples'])} molecules seen
  ({s2s['examples'] / 1584663:.2f} epochs), {s2s['train_hours']:.2f} h of optimiser time.
  The exported weights are `best.pt`, step {bart_step}.
- Fusion ({fusion_hours:.2f} h in all): {fusion_history}. The exported weights are step {int(fusion['step'])} of the last run
  (lowest validation loss).

## Validation metrics (the evaluations that chose the exported weights)
- BART, on {s2s_config['n_val']} MOSES test molecules: token accuracy {s2s['val_token_accuracy']:.3f}, greedy exact reconstruction
  {s2s['val_reconstruction']:.3f}, validity {s2s['val_validity']:.3f}, loss {s2s['val_loss']:.4f}.
- Fusion, on {fusion_config['n_val']} held-out neighbour lists: target written exactly {fusion['val_target_exact']:.3f} of the time
  with the exemplars fused vs {fusion['val_target_exact_without_fusion']:.3f} without; loss {fusion['val_loss']:.4f}.

Optimisation benchmarks: `benchmarks/optimize_qed.py`, `optimize_plogp.py`, `optimize_docking.py`,
`generator_quality.py` (results in `benchmarks/results/`).
"""
    (target.parent / "MODEL_CARD.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
