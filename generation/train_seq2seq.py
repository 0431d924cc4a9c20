"""Train the SMILES BART from scratch on MOSES as a denoising / enumeration autoencoder.

Each training example is one MOSES training molecule: the input is, with probability
``random_smiles_prob``, a randomised SMILES of it (another atom order), and in any case about
``mask_prob`` of its tokens are hidden under ``<mask>`` in spans (BART's text infilling:
Poisson(3) span lengths, each span one ``<mask>``); the target is the canonical SMILES.

Training is step-based (one MOSES epoch is ~1.6M examples, about 14 h on 2 cores): the
molecules are visited in a seeded random order, the position in that order is part of the
checkpoint, and ``last.pt`` (written every ``checkpoint_minutes`` and at the end) lets any run
resume where it stopped; ``max_minutes`` bounds one call. ``metrics.csv`` logs loss, token
accuracy and greedy reconstruction / validity on validation molecules (MOSES test split).

Run:  molops train-generator generation/configs/seq2seq_moses.yaml [--max-minutes 170]
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rdkit import Chem, RDLogger
from tqdm.auto import tqdm

from generation.seq2seq import MoleculeSeq2Seq, Seq2SeqConfig
from generation.tokenizer import tokenize
from molops.runfiles import append_csv, read_yaml_options, save_atomic

__all__ = ["Seq2SeqTrainConfig", "corrupt", "train_seq2seq", "validate"]

log = logging.getLogger(__name__)


@dataclass
class Seq2SeqTrainConfig:
    """Settings of a training run (YAML keys of the same names)."""

    out_dir: str = "runs/seq2seq_moses"
    model: dict[str, Any] = field(default_factory=dict)
    n_train: int | None = None  # first N molecules of the shuffled MOSES train split (None: all)
    n_val: int = 500
    batch_size: int = 64
    lr: float = 5e-4
    warmup_steps: int = 1000
    max_steps: int = 200_000
    max_minutes: float | None = None
    mask_prob: float = 0.15
    random_smiles_prob: float = 0.5
    validate_every: int = 1000
    checkpoint_minutes: float = 10.0
    seed: int = 0
    threads: int | None = None
    bf16: bool = True  # bfloat16 autocast (fp32 master weights): 2.2x faster on AVX-512/AMX CPUs

    @classmethod
    def from_yaml(cls, path: str | Path) -> Seq2SeqTrainConfig:
        return cls(**read_yaml_options(path, cls.__dataclass_fields__, "training config"))


def randomized_smiles(smiles: str, rng: np.random.Generator) -> str:
    """The same molecule written from a random atom order (no stereo, like MOSES)."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return smiles
    order = rng.permutation(mol.GetNumAtoms()).tolist()
    return Chem.MolToSmiles(Chem.RenumberAtoms(mol, order), canonical=False)


def corrupt(tokens: list[str], mask_prob: float, rng: np.random.Generator) -> list[str]:
    """BART text infilling: hide about `mask_prob` of the tokens in Poisson(3) spans, one
    ``<mask>`` per span (zero-length spans insert a ``<mask>``)."""
    budget = int(round(mask_prob * len(tokens)))
    out = list(tokens)
    while budget > 0 and out:
        length = min(int(rng.poisson(3.0)), budget, len(out))
        start = int(rng.integers(0, len(out) - length + 1))
        out[start : start + length] = ["<mask>"]
        budget -= max(length, 1)
    return out


def _example(smiles: str, config: Seq2SeqTrainConfig, rng: np.random.Generator) -> str:
    source = randomized_smiles(smiles, rng) if rng.random() < config.random_smiles_prob else smiles
    return "".join(corrupt(tokenize(source), config.mask_prob, rng)) if config.mask_prob > 0 else source


@torch.no_grad()
def validate(model: MoleculeSeq2Seq, smiles: list[str], batch_size: int = 100) -> dict[str, float]:
    """Teacher-forced loss and token accuracy, and greedy reconstruction of the *uncorrupted*
    canonical SMILES: exact-match rate and RDKit validity of the outputs (decoded without the
    grammar constraint: this measures the model itself)."""
    model.eval()
    losses, correct, total, exact, valid = [], 0, 0, 0, 0
    RDLogger.DisableLog("rdApp.*")
    try:
        for start in range(0, len(smiles), batch_size):
            chunk = smiles[start : start + batch_size]
            ids, mask = model.tokenizer.batch(chunk, max_length=model.config.max_length)
            labels = model.labels(chunk)
            masked = labels.masked_fill(labels == model.tokenizer.pad_id, -100)
            out = model.bart(input_ids=ids, attention_mask=mask, labels=masked)
            losses.append(float(out.loss) * len(chunk))
            keep = masked != -100
            correct += int((out.logits.argmax(-1) == labels)[keep].sum())
            total += int(keep.sum())
            for target, (decoded,) in zip(chunk, model.reconstruct(chunk, grammar=False)):
                exact += decoded == target
                valid += Chem.MolFromSmiles(decoded) is not None if decoded else False
    finally:
        RDLogger.EnableLog("rdApp.*")
    n = len(smiles)
    return {"val_loss": sum(losses) / n, "val_token_accuracy": correct / total,
            "val_reconstruction": exact / n, "val_validity": valid / n}


def _lr(step: int, config: Seq2SeqTrainConfig) -> float:
    """Linear warm-up, then inverse square-root decay (the Transformer schedule)."""
    step = max(step, 1)
    return config.lr * min(step / config.warmup_steps, math.sqrt(config.warmup_steps / step))




def train_seq2seq(
    config: Seq2SeqTrainConfig,
    train_smiles: list[str] | None = None,
    val_smiles: list[str] | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Train or resume in ``config.out_dir``; returns the state summary.

    Args:
        train_smiles / val_smiles: default to the MOSES train split (seeded shuffle, first
            ``n_train``) and the first ``n_val`` MOSES test molecules.
    """
    from molops.data import moses_smiles

    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if train_smiles is None:
        pool = moses_smiles("train").to_numpy()
        order = np.random.default_rng(config.seed).permutation(len(pool))
        train_smiles = pool[order[: config.n_train]].tolist()
    if val_smiles is None:
        val_smiles = moses_smiles("test").iloc[: config.n_val].tolist()

    torch.manual_seed(config.seed)
    model = MoleculeSeq2Seq(Seq2SeqConfig.from_dict(config.model))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    state = {"step": 0, "seen": 0, "finished": False, "best_val_loss": float("inf"), "train_seconds": 0.0}
    last = out / "last.pt"
    if last.exists():
        payload = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        state.update(payload["state"])
        if state["finished"] and state["step"] < config.max_steps:
            state["finished"] = False  # asked for more steps
    if state["finished"]:
        return state
    (out / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))

    def checkpoint() -> None:
        save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
               "model_config": asdict(model.config), "train_config": asdict(config)}, last)

    started = time.perf_counter()
    last_checkpoint = started
    losses: list[float] = []
    bar = tqdm(total=config.max_steps, initial=state["step"], desc=f"train {out.name}", disable=not progress)
    RDLogger.DisableLog("rdApp.*")
    try:
        while state["step"] < config.max_steps:
            # Example i of the run is built from its own seed: resuming reproduces the stream.
            batch = []
            for _ in range(config.batch_size):
                index = state["seen"] % len(train_smiles)
                rng = np.random.default_rng([config.seed, state["seen"]])
                batch.append((_example(train_smiles[index], config, rng), train_smiles[index]))
                state["seen"] += 1
            model.train()
            sources, targets = zip(*batch)
            ids, mask = model.tokenizer.batch(list(sources), max_length=model.config.max_length, allow_unknown=True)
            for group in optimizer.param_groups:
                group["lr"] = _lr(state["step"] + 1, config)
            tick = time.perf_counter()
            with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=config.bf16):
                loss = model(ids, mask, model.labels(list(targets)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            state["train_seconds"] += time.perf_counter() - tick
            state["step"] += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            if state["step"] % config.validate_every == 0 or state["step"] == config.max_steps:
                metrics = validate(model, val_smiles)
                row = {"step": state["step"], "examples": state["seen"], "train_loss": float(np.mean(losses)),
                       **metrics, "lr": optimizer.param_groups[0]["lr"],
                       "train_hours": state["train_seconds"] / 3600}
                append_csv(out / "metrics.csv", row)
                losses.clear()
                bar.set_postfix(val_loss=f"{metrics['val_loss']:.3f}", recon=f"{metrics['val_reconstruction']:.2f}")
                if metrics["val_loss"] < state["best_val_loss"]:
                    state["best_val_loss"] = metrics["val_loss"]
                    model.save(out / "best.pt", half=False, step=state["step"], **metrics)
            now = time.perf_counter()
            if now - last_checkpoint > 60 * config.checkpoint_minutes:
                checkpoint()
                last_checkpoint = now
            if config.max_minutes is not None and (now - started) / 60 >= config.max_minutes:
                break
        state["finished"] = state["step"] >= config.max_steps
    finally:
        RDLogger.EnableLog("rdApp.*")
        bar.close()
        checkpoint()
    return state
