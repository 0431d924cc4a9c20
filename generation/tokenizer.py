"""Atom-level SMILES tokenizer with a fixed vocabulary file.

Tokens follow the regular expression of Schwaller et al. (Molecular Transformer, 2019): a
bracket atom (``[nH]``, ``[C@@H]``, ``[O-]``) is one token, two-letter organic atoms (``Cl``,
``Br``) are one token, and every bond, branch, ring-closure digit (``%10`` included) and
aromatic atom is its own token. Joining the tokens gives the input string back exactly, for
every MOSES molecule (tested on the test split; ``python -m generation.tokenizer --check``
checks the training split too). ``<mask>`` (no SMILES character) is one token too, for the
denoising inputs of training.

The vocabulary (``generation/vocab.txt``, one token per line, special tokens first) was built
from the MOSES training and test SMILES by ``python -m generation.tokenizer --build``; it is
fixed so that shipped checkpoints keep their embedding rows. Tokens outside it map to
``<unk>`` and make `encode` raise unless ``allow_unknown=True``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from generation.errors import GenerationError
from molops.errors import describe_input

__all__ = ["SmilesTokenizer", "tokenize", "build_vocabulary", "SMILES_REGEX", "VOCAB_PATH"]

SMILES_REGEX = re.compile(
    r"(<mask>|\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])"
)
VOCAB_PATH = Path(__file__).with_name("vocab.txt")
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "<mask>")


def tokenize(smiles: str) -> list[str]:
    """Split a SMILES string into atom-level tokens.

    Raises:
        GenerationError: characters that no token covers (the round trip would lose them).
    """
    tokens = SMILES_REGEX.findall(smiles)
    if "".join(tokens) != smiles:
        covered = "".join(tokens)
        position = next((i for i, (a, b) in enumerate(zip(covered, smiles)) if a != b), len(covered))
        raise GenerationError(
            f"SMILES {describe_input(smiles)}: character {smiles[position]!r} at position {position} "
            "is not part of any SMILES token"
        )
    return tokens


class SmilesTokenizer:
    """Maps SMILES to token ids and back, with BART-style special tokens.

    ``encode`` gives ``<s> tokens </s>``; ``decode`` stops at ``</s>`` and drops specials.
    """

    def __init__(self, vocab_path: str | Path = VOCAB_PATH) -> None:
        tokens = Path(vocab_path).read_text().split("\n")
        self.tokens: list[str] = [t for t in tokens if t]
        if tuple(self.tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise GenerationError(f"{vocab_path}: must start with the special tokens {SPECIAL_TOKENS}")
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.bos_id, self.eos_id, self.unk_id, self.mask_id = range(len(SPECIAL_TOKENS))

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, smiles: str, *, allow_unknown: bool = False) -> list[int]:
        """Token ids of ``<s> smiles </s>``."""
        ids = [self.bos_id]
        for token in tokenize(smiles):
            token_id = self.index.get(token)
            if token_id is None:
                if not allow_unknown:
                    raise GenerationError(
                        f"SMILES {describe_input(smiles)}: token {token!r} is not in the vocabulary "
                        f"({len(self)} tokens learnt from MOSES)"
                    )
                token_id = self.unk_id
            ids.append(token_id)
        ids.append(self.eos_id)
        return ids

    def batch(
        self, smiles: Sequence[str], *, max_length: int | None = None, allow_unknown: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``(input_ids, attention_mask)`` tensors (batch x length).

        Raises:
            GenerationError: a SMILES longer than `max_length` tokens (truncating would change
                the molecule).
        """
        encoded = [self.encode(s, allow_unknown=allow_unknown) for s in smiles]
        longest = max((len(e) for e in encoded), default=0)
        if max_length is not None and longest > max_length:
            worst = max(range(len(encoded)), key=lambda i: len(encoded[i]))
            raise GenerationError(
                f"SMILES {describe_input(smiles[worst])}: {longest} tokens, more than the model's "
                f"{max_length}"
            )
        ids = torch.full((len(encoded), longest), self.pad_id, dtype=torch.long)
        for row, values in enumerate(encoded):
            ids[row, : len(values)] = torch.tensor(values)
        return ids, (ids != self.pad_id).long()

    def decode(self, ids: Iterable[int]) -> str:
        """SMILES text of generated ids: stops at ``</s>``, skips other special tokens."""
        out = []
        for token_id in ids:
            token_id = int(token_id)
            if token_id == self.eos_id:
                break
            if token_id >= len(SPECIAL_TOKENS):
                out.append(self.tokens[token_id])
        return "".join(out)

    def decode_batch(self, ids: torch.Tensor) -> list[str]:
        return [self.decode(row.tolist()) for row in ids]


def build_vocabulary(smiles: Iterable[str]) -> list[str]:
    """Special tokens, then every token seen, most frequent first (ties alphabetical)."""
    counts = Counter(token for s in smiles for token in tokenize(s))
    ordered = sorted(counts, key=lambda t: (-counts[t], t))
    return list(SPECIAL_TOKENS) + ordered


def main() -> None:
    from tqdm import tqdm

    from molops.data import moses_smiles

    parser = argparse.ArgumentParser(description="Build or check the SMILES vocabulary on MOSES.")
    parser.add_argument("--build", action="store_true", help=f"write {VOCAB_PATH.name} from MOSES train + test")
    parser.add_argument("--check", action="store_true", help="round-trip and encode every MOSES molecule")
    args = parser.parse_args()
    splits = {name: moses_smiles(name).tolist() for name in ("train", "test")}
    if args.build:
        vocab = build_vocabulary(s for split in splits.values() for s in split)
        VOCAB_PATH.write_text("\n".join(vocab) + "\n")
        print(f"wrote {len(vocab)} tokens to {VOCAB_PATH}")
    if args.check:
        tokenizer = SmilesTokenizer()
        for name, split in splits.items():
            longest = 0
            for s in tqdm(split, desc=name, mininterval=5):
                longest = max(longest, len(tokenizer.encode(s)))
            print(f"{name}: {len(split)} SMILES round-trip and encode; longest {longest} tokens with <s> </s>")


if __name__ == "__main__":
    main()
