"""Train RetMol's information-fusion module with the BART encoder and decoder frozen.

RetMol's objective: take a molecule x from the training pool and its K+1 most similar other
molecules in the pool (Tanimoto, Morgan r = 2); the nearest one is the target, the next K are
the exemplars; the decoder must write the target from the fusion of x's states with the
exemplars' states. The module thereby learns to move x's representation towards molecules
like its exemplars, which is what the optimisation loop relies on.

Neighbour lists are computed once per run (``pairs.parquet`` in the run folder, in resumable
chunks); training is step-based with ``last.pt`` checkpoints and ``metrics.csv`` like the
seq2seq training, and the result is written as one generator file (BART + fusion).

Run:  molops train-fusion generation/configs/fusion_moses.yaml [--max-minutes M]
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from generation.errors import GenerationError
from generation.fusion import FusionConfig, InformationFusion, RetrievalGenerator
from generation.seq2seq import MoleculeSeq2Seq
from molops.runfiles import append_csv, read_yaml_options, save_atomic

__all__ = ["FusionTrainConfig", "neighbour_pairs", "train_fusion"]

log = logging.getLogger(__name__)


@dataclass
class FusionTrainConfig:
    """Settings of a fusion training run (YAML keys of the same names)."""

    out_dir: str = "runs/fusion_moses"
    seq2seq: str = "runs/seq2seq_moses/best.pt"
    fusion: dict[str, Any] = field(default_factory=dict)
    # Warm start: fusion weights of an earlier run (its generator.pt or last.pt), used when the
    # BART was trained further and the fusion only has to follow its encoder's drift.
    init_fusion: str | None = None
    # Where the neighbour lists are cached (chunks <stem>.<i>.parquet); default: the run folder.
    # Runs on the same pool and seed can share them.
    pairs_path: str | None = None
    n_pairs: int = 20_000
    n_val: int = 200
    k: int = 10
    batch_size: int = 16
    lr: float = 3e-4
    max_steps: int = 20_000
    max_minutes: float | None = None
    validate_every: int = 500
    checkpoint_minutes: float = 10.0
    seed: int = 0
    threads: int | None = None
    bf16: bool = True

    @classmethod
    def from_yaml(cls, path: str | Path) -> FusionTrainConfig:
        return cls(**read_yaml_options(path, cls.__dataclass_fields__, "training config"))


def neighbour_pairs(queries: list[str], index, k: int, path: Path, chunk: int = 1000, progress: bool = True) -> pd.DataFrame:
    """For each query: its nearest other molecule in `index` (target) and the next `k` (exemplars).

    Written in chunks ``path.<i>.parquet`` so that an interrupted computation resumes.
    """
    parts = []
    for number, start in enumerate(tqdm(range(0, len(queries), chunk), desc="neighbours", disable=not progress)):
        part = path.with_suffix(f".{number}.parquet")
        if not part.exists():
            rows = []
            for query in queries[start : start + chunk]:
                hits = index.search(query, k=k + 2)
                hits = hits[hits["smiles"] != query]["smiles"].tolist()[: k + 1]
                if len(hits) == k + 1:
                    rows.append({"input": query, "target": hits[0], "exemplars": hits[1:]})
            tmp = part.with_suffix(".tmp")
            pd.DataFrame(rows).to_parquet(tmp)
            os.replace(tmp, part)  # a kill mid-write leaves no half-written chunk
        parts.append(pd.read_parquet(part))
    return pd.concat(parts, ignore_index=True)


def _fusion_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The fusion module's weights (fp32) from a generator file or a fusion run's last.pt."""
    from generation.seq2seq import float_weights

    if not Path(path).exists():
        raise GenerationError(f"init_fusion: no such file {path}")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if "fusion" not in payload:
        raise GenerationError(f"init_fusion: {path} holds no fusion weights (keys: {sorted(payload)})")
    return float_weights(payload["fusion"])


def _loss(model: RetrievalGenerator, rows: pd.DataFrame, k: int) -> torch.Tensor:
    fused, mask = model.fused_states(rows["input"].tolist(), [list(e) for e in rows["exemplars"]], k)
    labels = model.seq2seq.labels(rows["target"].tolist())
    labels = labels.masked_fill(labels == model.tokenizer.pad_id, -100)
    return model.seq2seq.bart(encoder_outputs=(fused,), attention_mask=mask, labels=labels).loss


@torch.no_grad()
def _validate(model: RetrievalGenerator, rows: pd.DataFrame, k: int) -> dict[str, float]:
    """Teacher-forced loss, and how often greedy decoding writes the target exactly, with the
    exemplars fused and without (the plain autoencoder: fusion skipped)."""
    model.eval()
    loss = float(_loss(model, rows, k))
    fused, mask = model.fused_states(rows["input"].tolist(), [list(e) for e in rows["exemplars"]], k)
    with_fusion = [out[0] for out in model.seq2seq.decode(fused, mask)]
    plain = [out[0] for out in model.seq2seq.reconstruct(rows["input"].tolist())]
    targets = rows["target"].tolist()
    return {"val_loss": loss,
            "val_target_exact": float(np.mean([a == b for a, b in zip(with_fusion, targets)])),
            "val_target_exact_without_fusion": float(np.mean([a == b for a, b in zip(plain, targets)]))}


def train_fusion(config: FusionTrainConfig, pairs: pd.DataFrame | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Train or resume the fusion module in ``config.out_dir``; writes ``generator.pt``."""
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seq2seq = MoleculeSeq2Seq.load(config.seq2seq)
    for parameter in seq2seq.parameters():
        parameter.requires_grad_(False)
    if pairs is None:
        from molops.data import moses_smiles
        from molops.library import load_library_index

        pool = moses_smiles("train").to_numpy()
        chosen = np.random.default_rng(config.seed).choice(len(pool), config.n_pairs + config.n_val, replace=False)
        pairs = neighbour_pairs(pool[chosen].tolist(), load_library_index("moses"), config.k,
                                Path(config.pairs_path) if config.pairs_path else out / "pairs.parquet",
                                progress=progress)
    val, train = pairs.iloc[: config.n_val], pairs.iloc[config.n_val :].reset_index(drop=True)
    if train.empty:
        raise GenerationError("no training pairs")

    torch.manual_seed(config.seed)
    fusion = InformationFusion(FusionConfig(**{"d_model": seq2seq.config.d_model, **config.fusion}))
    model = RetrievalGenerator(seq2seq, fusion)
    optimizer = torch.optim.AdamW(fusion.parameters(), lr=config.lr, weight_decay=0.01)
    state = {"step": 0, "finished": False, "best_val_loss": float("inf"), "train_seconds": 0.0}
    last = out / "last.pt"
    if config.init_fusion and not last.exists():
        fusion.load_state_dict(_fusion_weights(config.init_fusion))
        log.info("fusion weights initialised from %s", config.init_fusion)
    if last.exists():
        payload = torch.load(last, map_location="cpu", weights_only=False)
        fusion.load_state_dict(payload["fusion"])
        optimizer.load_state_dict(payload["optimizer"])
        state.update(payload["state"])
        if state["finished"] and state["step"] < config.max_steps:
            state["finished"] = False
    if state["finished"]:
        return state
    (out / "config.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))

    def checkpoint() -> None:
        save_atomic({"fusion": fusion.state_dict(), "optimizer": optimizer.state_dict(), "state": state}, last)

    started = last_checkpoint = time.perf_counter()
    bar = tqdm(total=config.max_steps, initial=state["step"], desc=f"train {out.name}", disable=not progress)
    losses: list[float] = []
    try:
        while state["step"] < config.max_steps:
            rng = np.random.default_rng([config.seed, state["step"]])  # resumable batch order
            rows = train.iloc[rng.choice(len(train), min(config.batch_size, len(train)), replace=False)]
            model.train()
            seq2seq.eval()  # frozen: no dropout in the BART
            tick = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                loss = _loss(model, rows, config.k)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(fusion.parameters(), 1.0)
            optimizer.step()
            state["train_seconds"] += time.perf_counter() - tick
            state["step"] += 1
            losses.append(float(loss.detach()))
            bar.update(1)
            if state["step"] % config.validate_every == 0 or state["step"] == config.max_steps:
                metrics = _validate(model, val, config.k) if len(val) else {"val_loss": float(np.mean(losses))}
                append_csv(out / "metrics.csv", {"step": state["step"], "train_loss": float(np.mean(losses)),
                                                  **metrics, "train_hours": state["train_seconds"] / 3600})
                losses.clear()
                if metrics["val_loss"] < state["best_val_loss"]:
                    state["best_val_loss"] = metrics["val_loss"]
                    model.save(out / "generator.pt", step=state["step"], seq2seq=str(config.seq2seq), **metrics)
            now = time.perf_counter()
            if now - last_checkpoint > 60 * config.checkpoint_minutes:
                checkpoint()
                last_checkpoint = now
            if config.max_minutes is not None and (now - started) / 60 >= config.max_minutes:
                break
        state["finished"] = state["step"] >= config.max_steps
    finally:
        bar.close()
        checkpoint()
    return state

