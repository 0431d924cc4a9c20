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

__all__ = ["FusionConfig", "InformationFusion"]


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
