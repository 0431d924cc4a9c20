"""generation.tokenizer: exact round trip on MOSES, fixed vocabulary, clear errors."""

from __future__ import annotations

import pytest
import torch

from generation.errors import GenerationError
from generation.tokenizer import SPECIAL_TOKENS, SmilesTokenizer, build_vocabulary, tokenize
from molops.data import moses_smiles


def test_tokens_are_atoms_bonds_and_ring_closures():
    assert tokenize("C[C@@H](Cl)c1ccc(Br)cc1%10") == [
        "C", "[C@@H]", "(", "Cl", ")", "c", "1", "c", "c", "c", "(", "Br", ")", "c", "c", "1", "%10"
    ]
    assert tokenize("[nH]1cccc1") == ["[nH]", "1", "c", "c", "c", "c", "1"]
    with pytest.raises(GenerationError, match="position 1"):
        tokenize("C&C")


def test_every_moses_test_molecule_round_trips_through_the_vocabulary():
    tokenizer = SmilesTokenizer()
    smiles = moses_smiles("test").tolist()
    assert len(smiles) == 176_074
    for s in smiles:
        ids = tokenizer.encode(s)
        assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
        assert tokenizer.decode(ids) == s


def test_vocabulary_file_is_fixed_and_special_tokens_come_first():
    tokenizer = SmilesTokenizer()
    assert tuple(tokenizer.tokens[: len(SPECIAL_TOKENS)]) == SPECIAL_TOKENS
    # Rebuilding from a sample of the same data adds no token the file lacks.
    sample = moses_smiles("train").iloc[:20_000].tolist()
    assert set(build_vocabulary(sample)) <= set(tokenizer.tokens)


def test_batches_pad_and_unknown_tokens_are_refused():
    tokenizer = SmilesTokenizer()
    ids, mask = tokenizer.batch(["CCO", "c1ccccc1"])
    assert ids.shape == (2, 10) and mask.dtype == torch.long
    assert mask[0].tolist() == [1] * 5 + [0] * 5
    assert tokenizer.decode_batch(ids) == ["CCO", "c1ccccc1"]
    with pytest.raises(GenerationError, match=r"\[C@@H\]' is not in the vocabulary"):
        tokenizer.encode("C[C@@H](N)C(=O)O")
    assert tokenizer.unk_id in tokenizer.encode("C[C@@H](N)C(=O)O", allow_unknown=True)
    with pytest.raises(GenerationError, match="more than the model's 4"):
        tokenizer.batch(["CCCCCC"], max_length=4)
