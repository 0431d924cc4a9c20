"""RetMol's information-fusion module: the input's encoder states attend to the exemplars'.

Given the encoder states of the input molecule (B x L x d, mask B x L) and of its K retrieved
exemplars (B x K x Lr x d, mask B x K x Lr), every input token queries every token of every
exemplar by multi-head cross-attention; the result is added to the input states, followed by a
position-wise feed-forward block (both residual, pre-layer-norm), and replaces the encoder
output that the decoder reads. The residual branches start at zero, so an untrained module is
exactly the identity and training starts from the plain autoencoder. Exemplar padding and absent exemplars (fewer than K retrieved) are masked out;
with no exemplar at all the module returns the input states unchanged, so the generator
degrades to the plain autoencoder instead of failing.

Only this module is trained (the BART encoder and decoder are frozen), with RetMol's
objective: from a molecule and K of its neighbours, decode its nearest other neighbour.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["FusionConfig", "InformationFusion", "RetrievalGenerator"]


@dataclass(frozen=True)
class FusionConfig:
    d_model: int = 256
    heads: int = 8
    ffn_dim: int = 512
    dropout: float = 0.1


class InformationFusion(nn.Module):
    """Cross-attention from input states to exemplar states, residual and normalised."""

    def __init__(self, config: FusionConfig = FusionConfig()) -> None:
        super().__init__()
        self.config = config
        self.norm_query = nn.LayerNorm(config.d_model)
        self.norm_memory = nn.LayerNorm(config.d_model)
        self.attention = nn.MultiheadAttention(config.d_model, config.heads, dropout=config.dropout, batch_first=True)
        self.norm_feed_forward = nn.LayerNorm(config.d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(config.d_model, config.ffn_dim), nn.GELU(), nn.Dropout(config.dropout),
            nn.Linear(config.ffn_dim, config.d_model),
        )
        self.dropout = nn.Dropout(config.dropout)
        # Start as the identity map: the output projection of attention and the last linear
        # layer are zero, so an untrained module leaves the autoencoder's states intact.
        nn.init.zeros_(self.attention.out_proj.weight)
        nn.init.zeros_(self.attention.out_proj.bias)
        nn.init.zeros_(self.feed_forward[-1].weight)
        nn.init.zeros_(self.feed_forward[-1].bias)

    def forward(
        self,
        states: torch.Tensor,
        mask: torch.Tensor,
        exemplar_states: torch.Tensor,
        exemplar_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Fused states (B x L x d) for the decoder.

        Args:
            states, mask: input encoder states (B x L x d) and its 0/1 mask (B x L).
            exemplar_states, exemplar_mask: B x K x Lr x d and B x K x Lr (all-zero rows for
                missing exemplars).
        """
        batch, k, length, width = exemplar_states.shape
        memory = exemplar_states.reshape(batch, k * length, width)
        memory_mask = exemplar_mask.reshape(batch, k * length).bool()
        has_memory = memory_mask.any(dim=1)
        if not bool(has_memory.any()):
            return states
        # Rows without any exemplar attend to nothing; give them one dummy key and zero out
        # their update below, instead of producing NaN from an all-masked softmax.
        safe_mask = memory_mask.clone()
        safe_mask[~has_memory, 0] = True
        memory = self.norm_memory(memory)
        update, _ = self.attention(self.norm_query(states), memory, memory, key_padding_mask=~safe_mask,
                                   need_weights=False)
        fused = states + self.dropout(update)
        fused = fused + self.dropout(self.feed_forward(self.norm_feed_forward(fused)))
        # Keep the fused states exactly equal to the input where there is no exemplar, and
        # zero at the input's padding (the decoder masks those anyway).
        fused = torch.where(has_memory[:, None, None], fused, states)
        return fused * mask[..., None].to(fused.dtype)

    def to_dict(self) -> dict:
        return asdict(self.config)


class RetrievalGenerator(nn.Module):
    """The RetMol generator: a (frozen) SMILES BART plus the information-fusion module.

    `fused_states(inputs, exemplars)` encodes each input and its exemplar list and fuses them;
    the decoder of `seq2seq` turns (perturbed) fused states into molecules.
    """

    def __init__(self, seq2seq, fusion: InformationFusion | None = None) -> None:  # seq2seq: MoleculeSeq2Seq
        super().__init__()
        self.seq2seq = seq2seq
        self.fusion = fusion or InformationFusion(FusionConfig(d_model=seq2seq.config.d_model))

    @property
    def tokenizer(self):
        return self.seq2seq.tokenizer

    def encode_exemplars(self, exemplars: list[list[str]], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """States (B x k x Lr x d) and mask (B x k x Lr) of up to `k` exemplars per input."""
        flat = [s for group in exemplars for s in group[:k]]
        width = self.seq2seq.config.d_model
        if not flat:
            return torch.zeros(len(exemplars), k, 1, width), torch.zeros(len(exemplars), k, 1, dtype=torch.long)
        states, mask = self.seq2seq.encode(flat)
        out = torch.zeros(len(exemplars), k, states.shape[1], width, dtype=states.dtype)
        out_mask = torch.zeros(len(exemplars), k, states.shape[1], dtype=torch.long)
        row = 0
        for b, group in enumerate(exemplars):
            for j in range(min(k, len(group))):
                out[b, j], out_mask[b, j] = states[row], mask[row]
                row += 1
        return out, out_mask

    def fused_states(self, inputs: list[str], exemplars: list[list[str]], k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused encoder states and mask of `inputs`, each with its own exemplar list."""
        states, mask = self.seq2seq.encode(inputs)
        exemplar_states, exemplar_mask = self.encode_exemplars(exemplars, k)
        return self.fusion(states, mask, exemplar_states, exemplar_mask), mask

    def save(self, path, **metadata) -> None:
        """One file: fp16 BART weights, fusion weights, both configurations, metadata."""
        from pathlib import Path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from generation.seq2seq import half_weights
        from molops.runfiles import save_atomic

        save_atomic({"seq2seq_config": asdict(self.seq2seq.config), "vocabulary": self.tokenizer.tokens,
                     "seq2seq": half_weights(self.seq2seq), "fusion_config": self.fusion.to_dict(),
                     "fusion": half_weights(self.fusion), "metadata": metadata}, path)

    @classmethod
    def load(cls, path, device: str | torch.device = "cpu") -> RetrievalGenerator:
        """Load a `save`d generator (weights back in fp32)."""
        from generation.seq2seq import MoleculeSeq2Seq, Seq2SeqConfig, float_weights, read_checkpoint
        from generation.tokenizer import SmilesTokenizer

        tokenizer = SmilesTokenizer()
        payload = read_checkpoint(path, tokenizer)
        seq2seq = MoleculeSeq2Seq(Seq2SeqConfig(**payload["seq2seq_config"]), tokenizer)
        seq2seq.load_state_dict(float_weights(payload["seq2seq"]))
        fusion = InformationFusion(FusionConfig(**payload["fusion_config"]))
        fusion.load_state_dict(float_weights(payload["fusion"]))
        model = cls(seq2seq, fusion)
        model.metadata = payload.get("metadata", {})
        return model.to(device).eval()
