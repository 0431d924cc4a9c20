"""SMILES encoder-decoder: a BART (``transformers``) trained from scratch by this project.

The model is a denoising autoencoder of molecules: it reads a SMILES string, possibly
randomised (another atom order) and with spans replaced by ``<mask>``, and writes the
canonical SMILES. RetMol builds on such a model: the encoder maps a molecule to a sequence of
hidden states (one per token, ``d_model`` wide), the decoder maps states back to molecules,
and perturbing or fusing the states explores the chemistry around the input.

`MoleculeSeq2Seq` bundles model and tokenizer and exposes exactly that: `encode` (SMILES ->
states and mask), `decode` (states -> SMILES, greedy, beam or sampled) and `save`/`load` of a
single checkpoint file (fp16 weights + configuration).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import BartConfig, BartForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

from generation.errors import GenerationError
from generation.tokenizer import SmilesTokenizer
from molops.errors import InputFileError
from molops.runfiles import load_torch_file, save_atomic

__all__ = ["Seq2SeqConfig", "MoleculeSeq2Seq"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Size of the BART (defaults: ~7.5M parameters, MegaMolBART-like 4+4 layers, d=256).

    ``max_length`` counts tokens including ``<s>`` and ``</s>`` (MOSES needs 56).
    """

    d_model: int = 256
    encoder_layers: int = 4
    decoder_layers: int = 4
    attention_heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.1
    max_length: int = 64

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Seq2SeqConfig:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise GenerationError(f"unknown seq2seq option(s) {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)

    def bart(self, tokenizer: SmilesTokenizer) -> BartConfig:
        return BartConfig(
            vocab_size=len(tokenizer),
            d_model=self.d_model,
            encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers,
            encoder_attention_heads=self.attention_heads,
            decoder_attention_heads=self.attention_heads,
            encoder_ffn_dim=self.ffn_dim,
            decoder_ffn_dim=self.ffn_dim,
            dropout=self.dropout,
            attention_dropout=self.dropout,
            max_position_embeddings=self.max_length + 2,
            pad_token_id=tokenizer.pad_id,
            bos_token_id=tokenizer.bos_id,
            eos_token_id=tokenizer.eos_id,
            decoder_start_token_id=tokenizer.bos_id,
            forced_bos_token_id=None,
            forced_eos_token_id=tokenizer.eos_id,
            scale_embedding=True,
        )


def half_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with floating-point tensors in fp16 (half the size of shipped files)."""
    return {k: v.half() if v.is_floating_point() else v for k, v in module.state_dict().items()}


def float_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A stored state dict with floating-point tensors back in fp32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def read_checkpoint(path: str | Path, tokenizer: SmilesTokenizer) -> dict[str, Any]:
    """The payload of a generator file, after checking it exists and uses our vocabulary."""
    path = Path(path)
    if not path.exists():
        raise GenerationError(f"generator file {path} does not exist")
    try:
        payload = load_torch_file(path, "generator", keys=("vocabulary",))
    except InputFileError as exc:
        raise GenerationError(str(exc)) from None
    if payload.get("vocabulary") != tokenizer.tokens:
        raise GenerationError(f"{path}: trained with another vocabulary than generation/vocab.txt")
    return payload


class MoleculeSeq2Seq(torch.nn.Module):
    """BART over SMILES tokens with encode / decode helpers for latent-space generation."""

    def __init__(self, config: Seq2SeqConfig = Seq2SeqConfig(), tokenizer: SmilesTokenizer | None = None) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer or SmilesTokenizer()
        self.bart = BartForConditionalGeneration(config.bart(self.tokenizer))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean token cross-entropy of `labels` (pad positions ignored) given the input."""
        labels = labels.masked_fill(labels == self.tokenizer.pad_id, -100)
        return self.bart(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss

    def labels(self, smiles: list[str]) -> torch.Tensor:
        """Decoder targets: the tokens of `smiles` and ``</s>`` (the decoder starts from ``<s>``)."""
        ids, _ = self.tokenizer.batch(smiles, max_length=self.config.max_length)
        return ids[:, 1:].contiguous()

    @torch.no_grad()
    def encode(self, smiles: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states (batch x tokens x d_model) and attention mask of `smiles`."""
        ids, mask = self.tokenizer.batch(smiles, max_length=self.config.max_length)
        ids, mask = ids.to(self.device), mask.to(self.device)
        states = self.bart.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
        return states, mask

    @torch.no_grad()
    def decode(
        self,
        states: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_return_sequences: int = 1,
        num_beams: int = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        grammar: bool = True,
    ) -> list[list[str]]:
        """SMILES decoded from encoder states: one list of `num_return_sequences` per input row.

        Greedy by default; ``num_beams > 1`` for beam search, ``do_sample=True`` for sampling
        (seed with ``torch.manual_seed`` for reproducible samples). With `grammar` (default)
        only strings that parse as SMILES can be written (`generation.grammar.SmilesGrammar`).
        """
        from transformers import LogitsProcessorList

        from generation.grammar import SmilesGrammar

        greedy = num_beams == 1 and not do_sample
        processors = LogitsProcessorList([SmilesGrammar(self.tokenizer, greedy=greedy)] if grammar else [])
        outputs = self.bart.generate(
            logits_processor=processors,
            encoder_outputs=BaseModelOutput(last_hidden_state=states),
            attention_mask=mask,
            max_length=self.config.max_length,
            num_beams=num_beams,
            num_return_sequences=num_return_sequences,
            do_sample=do_sample,
            temperature=temperature if do_sample else None,
            top_k=top_k if do_sample else None,
            decoder_start_token_id=self.tokenizer.bos_id,
            pad_token_id=self.tokenizer.pad_id,
            eos_token_id=self.tokenizer.eos_id,
        )
        texts = self.tokenizer.decode_batch(outputs.cpu())
        return [texts[i : i + num_return_sequences] for i in range(0, len(texts), num_return_sequences)]

    def reconstruct(self, smiles: list[str], **decode_options: Any) -> list[list[str]]:
        """Encode then decode (greedy by default): an autoencoder's round trip."""
        states, mask = self.encode(smiles)
        return self.decode(states, mask, **decode_options)

    def save(self, path: str | Path, *, half: bool = True, **metadata: Any) -> Path:
        """One file with the weights (fp16 by default, to keep package data small), the
        configuration, the vocabulary and `metadata` (training data, steps, metrics)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        weights = half_weights(self) if half else self.state_dict()
        # Through a temporary file and a rename: a kill mid-write never leaves torn weights.
        save_atomic({"config": asdict(self.config), "vocabulary": self.tokenizer.tokens,
                     "state_dict": weights, "metadata": metadata}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> MoleculeSeq2Seq:
        """Load a `save`d file (weights back in fp32); refuses a vocabulary other than ours."""
        tokenizer = SmilesTokenizer()
        payload = read_checkpoint(path, tokenizer)
        model = cls(Seq2SeqConfig(**payload["config"]), tokenizer)
        model.load_state_dict(float_weights(payload["state_dict"]))
        model.metadata = payload.get("metadata", {})
        return model.to(device).eval()
