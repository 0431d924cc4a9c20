"""generation.grammar: the SMILES decoding constraint never blocks real molecules and only lets
parsable strings end."""

from __future__ import annotations

import random

import pytest
import torch
from rdkit import Chem

from generation.grammar import SmilesGrammar
from generation.tokenizer import SmilesTokenizer, tokenize

TOKENIZER = SmilesTokenizer()


def _allowed_after(grammar: SmilesGrammar, smiles_prefix: str) -> set[str]:
    ids = [TOKENIZER.bos_id] + [TOKENIZER.index[t] for t in tokenize(smiles_prefix)]
    return {TOKENIZER.tokens[i] for i in grammar.allowed(grammar._state(tuple(ids)))}


def test_every_token_of_moses_molecules_is_allowed():
    from molops.data import moses_smiles

    grammar = SmilesGrammar(TOKENIZER)
    for smiles in moses_smiles("test").sample(2000, random_state=0):
        ids = [TOKENIZER.bos_id]
        for token in [*tokenize(smiles), "</s>"]:
            token_id = TOKENIZER.index[token]
            assert token_id in grammar.allowed(grammar._state(tuple(ids))), (smiles, token, len(ids))
            ids.append(token_id)


@pytest.mark.parametrize(("prefix", "forbidden", "allowed"), [
    ("", {")", "(", "1", "=", "</s>"}, {"C", "c", "N"}),
    ("CC(", {")", "</s>", "("}, {"C", "="}),
    ("C1CC", {"</s>"}, {"1", "C"}),
    ("C1", {"1"}, {"C", "2"}),  # "C11" bonds an atom to itself
    ("CF", {"C", "=", "(", "1"}, {"</s>"}),  # fluorine is full
    ("CC=", {"#", "=", ")", "</s>", "F"}, {"C", "O"}),  # "=F" would be over-bonded
    ("C1CCCC(", {"F", "Cl"}, set()),  # inside a branch a terminal atom is fine
    ("C1CCCC", {"F", "Cl", "Br"}, {"C"}),  # ...outside it would leave ring 1 unclosable
    ("c1ccccccc", {"1"}, {"c"}),  # an aromatic ring of 8 atoms
    # Kekulé structures: pyrazole's n1 has room for no double bond and closes the ring with its
    # neighbours c=c; a methyl on it would leave a carbon without one.
    ("Cn1cc(C)cn1", {"C", "(", "-"}, {"</s>"}),
    # A six-membered ring with a substituted n pairs n=c, c=c and must give its closing carbon an
    # exocyclic double bond (a pyridazinone); a pyrazole's closing carbon is needed for c=c, and
    # so is a seven-membered ring's.
    ("CCn1ncc(C)cc1", {"</s>", "C"}, {"="}),
    ("CCn1ncc(C)c1", {"="}, {"</s>", "C"}),
    ("CCn1ncc(C)c(C)c(C)c1", {"="}, {"</s>"}),
    # Furan written one carbon too long (c1cccco1 + c): five carbons, no way to pair them all.
    ("Cc1ccc(C)c(C)o", {"1"}, {"c"}),
])
def test_grammar_rules(prefix, forbidden, allowed):
    after = _allowed_after(SmilesGrammar(TOKENIZER), prefix)
    if prefix == "C1CCCC(":
        assert forbidden <= after
        return
    assert not forbidden & after, forbidden & after
    assert allowed <= after


def test_random_walks_that_end_are_parsable_smiles():
    grammar = SmilesGrammar(TOKENIZER)
    rng = random.Random(0)
    finished = stuck = 0
    for _ in range(300):
        ids = [TOKENIZER.bos_id]
        for _ in range(40):
            choices = grammar.allowed(grammar._state(tuple(ids)))
            if not choices:  # a corner the rules do not foresee (the processor then lets the model choose)
                stuck += 1
                ids = None
                break
            # Lean towards ending, so that many walks finish.
            token_id = TOKENIZER.eos_id if TOKENIZER.eos_id in choices and rng.random() < 0.3 else rng.choice(choices)
            if token_id == TOKENIZER.eos_id:
                break
            ids.append(token_id)
        else:
            continue
        if ids is None:
            continue
        finished += 1
        smiles = TOKENIZER.decode(ids)
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        assert mol is not None, smiles
        mol.UpdatePropertyCache(strict=False)
        for atom in mol.GetAtoms():  # no atom beyond its valence (aromatic bonds count 1)
            order = sum(1 if b.GetIsAromatic() else int(b.GetBondTypeAsDouble()) for b in atom.GetBonds())
            limit = {"C": 4, "N": 3, "O": 2, "S": 6, "F": 1, "Cl": 1, "Br": 1, "H": 1}[atom.GetSymbol()]
            assert order <= limit, smiles
    assert finished > 100 and stuck < 15


def test_processor_masks_scores_of_forbidden_tokens():
    grammar = SmilesGrammar(TOKENIZER)
    ids = torch.tensor([[TOKENIZER.bos_id, TOKENIZER.index["C"], TOKENIZER.index["("]]])
    scores = torch.zeros(1, len(TOKENIZER))
    scores[0, TOKENIZER.eos_id] = 5.0  # the model would like to stop inside a branch
    masked = grammar(ids, scores)
    assert torch.isinf(masked[0, TOKENIZER.eos_id]) and torch.isinf(masked[0, TOKENIZER.index[")"]])
    assert masked[0, TOKENIZER.index["C"]] == 0.0


def test_kekule_rule_ends_only_kekulizable_aromatic_systems():
    """Every string the rule lets end kekulizes; strings it blocks would not have."""
    grammar = SmilesGrammar(TOKENIZER)
    cases = {"Cn1cc(C)cn1": True, "Cn1cc(C)cn1C": False, "c1ccc2occc2c1": True, "c1ccc2occcc2c1": False,
             "O=c1cc[nH]cc1": True, "Cc1nc2ccccc2n1C": True}
    for smiles, valid in cases.items():
        assert (Chem.MolFromSmiles(smiles) is not None) is valid, smiles
        ids = [TOKENIZER.bos_id] + [TOKENIZER.index[t] for t in tokenize(smiles)]
        assert (TOKENIZER.eos_id in grammar.allowed(grammar._state(tuple(ids)))) is valid, smiles


def test_greedy_mode_picks_what_the_full_mask_picks():
    """The lazy greedy processor leaves exactly the token argmax would take under the full mask,
    including the end-of-string rule (the model wants to stop with a ring or branch open)."""
    from molops.data import moses_smiles

    full, lazy = SmilesGrammar(TOKENIZER), SmilesGrammar(TOKENIZER, greedy=True)
    generator = torch.Generator().manual_seed(0)
    prefixes = []
    for smiles in moses_smiles("test").sample(40, random_state=3):
        ids = [TOKENIZER.bos_id] + [TOKENIZER.index[t] for t in tokenize(smiles)]
        prefixes += [ids[:cut] for cut in range(1, len(ids) + 1, 3)]
    for trial in range(3):
        scores = torch.randn(len(prefixes), len(TOKENIZER.tokens), generator=generator)
        if trial == 1:
            scores[:, TOKENIZER.eos_id] += 10.0  # the model wants to stop everywhere
        for row, prefix in enumerate(prefixes):
            ids = torch.tensor([prefix])
            expected = int(full(ids, scores[row : row + 1].clone()).argmax())
            picked = lazy(ids, scores[row : row + 1].clone())
            assert int(picked.argmax()) == expected, (TOKENIZER.decode_batch(ids), trial)
            assert torch.isfinite(picked).sum() == 1
