"""SMILES grammar as a decoding constraint: the decoder may only write strings that can parse.

A small BART trained on CPU makes two kinds of invalid SMILES. Syntax errors (an unclosed ring
or branch, a bond with nothing after it, ``C11``) are impossible to write under this
constraint: `SmilesGrammar` is a `transformers` logits processor that follows each sequence
being decoded (atoms, bonds between them, open branches and ring labels) and forbids, at every
step, the tokens that would make the prefix unparsable or the end premature. It also forbids
bonds beyond an atom's valence (neutral atoms, aromatic bonds counted as single), and a ring
closure between two aromatic atoms that would close an aromatic ring of fewer than 4 or more
than 7 atoms. Aromatic systems must also stay kekulizable, the cause of nine in ten invalid samples
before this rule (a ring written one atom too long, ``n1`` substituted in a six-membered ring, an
exocyclic ``=O`` on a carbon its ring needed): every aromatic atom whose bonds are all written must
still be able to take its double bond in some Kekulé structure (`_kekulizable`), which forbids
the tokens that would leave it none. RDKit still checks every decoded molecule.

The model's own preference decides among allowed tokens; for well-formed outputs nothing changes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor

from generation.tokenizer import SmilesTokenizer

__all__ = ["GRAMMAR_VERSION", "SmilesGrammar"]

#: Bumped whenever the constraint changes what can be decoded (benchmark journals carry it):
#: 1 syntax, valence and aromatic ring sizes; 2 also Kekulé structures.
GRAMMAR_VERSION = 2

_BONDS = {"-": 1, "=": 2, "#": 3, "/": 1, "\\": 1, ":": 1}
_AROMATIC_RING_SIZES = (4, 5, 6, 7)  # 5 and 6 nearly always; 4 and 7 in a few MOSES molecules
# Most bonds (by order; an aromatic bond counts 1) an atom of this token may carry: neutral
# atoms as in MOSES. Aromatic c may carry an exocyclic double bond (c(=O)); unknown tokens 4.
_CAPACITY = {"C": 4, "c": 4, "N": 3, "n": 3, "[nH]": 2, "O": 2, "o": 2, "S": 6, "s": 4,
             "F": 1, "Cl": 1, "Br": 1, "I": 1, "[H]": 1, "B": 3, "P": 5}


@dataclass
class _Prefix:
    """What the grammar knows after a decoded prefix."""

    aromatic: list[bool] = field(default_factory=list)  # per atom
    capacity: list[int] = field(default_factory=list)  # per atom: most bond order it may carry
    used: list[int] = field(default_factory=list)  # per atom: bond order it carries (incl. open rings)
    neighbours: list[set[int]] = field(default_factory=list)
    current: int = -1  # atom the next atom, branch or ring label attaches to
    branches: list[int] = field(default_factory=list)  # atom at each open '('
    rings: dict[str, tuple[int, int, bool]] = field(default_factory=dict)  # open label → (atom, order, explicit)
    last: str = "start"  # start | atom | ring | open | close | bond | end
    order: int = 1  # order of the bond the next atom or ring label makes
    explicit: bool = False  # that bond was written ("c-1": a single bond, not an aromatic one)
    before_bond: str = ""  # what the written bond follows: a ring label may only follow it after an atom
    pi: list[str] = field(default_factory=list)  # per atom: "c"/"n" (may need a double bond), "x" (o, s, [nH]), ""
    double: list[bool] = field(default_factory=list)  # per atom: has a written double or triple bond
    pi_bonds: list[set[int]] = field(default_factory=list)  # per atom: its aromatic bonds
    aromatic_bond: bool = True  # the bond the next atom or ring label makes may be aromatic (none or ':' written)

    def copy(self) -> _Prefix:
        # The per-atom sets are shared, never changed in place (`_link` replaces the two it
        # changes): a prefix is copied at every decoding step of every row.
        return _Prefix(list(self.aromatic), list(self.capacity), list(self.used), list(self.neighbours),
                       self.current, list(self.branches), dict(self.rings), self.last, self.order,
                       self.explicit, self.before_bond, list(self.pi), list(self.double),
                       list(self.pi_bonds), self.aromatic_bond)

    def spare(self) -> int:
        """Bond order the current atom can still take."""
        return self.capacity[self.current] - self.used[self.current]

    def distance(self, a: int, b: int, also_bonded_to_b: set[int] = frozenset()) -> int:
        """Bonds on the shortest path between atoms a and b (a large number if none), with b
        taken as bonded to the atoms `also_bonded_to_b` as well."""
        seen, queue = {a: 0}, deque([a])
        while queue:
            atom = queue.popleft()
            if atom == b:
                return seen[atom]
            extra = {b} if atom in also_bonded_to_b else set()
            for other in self.neighbours[atom] | extra:
                if other not in seen:
                    seen[other] = seen[atom] + 1
                    queue.append(other)
        return 10**6


def _link(sets: list[set[int]], a: int, b: int) -> None:
    """Record a bond between atoms a and b in per-atom `sets` shared with other prefixes (new sets, copy on write)."""
    sets[a] = sets[a] | {b}
    sets[b] = sets[b] | {a}


def _kekulizable(state: _Prefix, budget: int = 5000) -> bool:
    """Whether every finished aromatic atom of `state` can still get its double bond.

    An aromatic c, or n with two bonds, needs one double bond to an aromatic neighbour in a
    Kekulé structure (o, s, [nH], a substituted n and an atom with an exocyclic double bond
    need none). Atoms whose bonds are all written ("finished": not the current atom, not a
    branch point, holding no open ring label) are settled; the others may still gain a
    substituent or an exocyclic double bond, so they may take a double bond or not. The prefix
    can still be completed into a kekulizable molecule only if a matching over the aromatic
    bonds covers every finished atom that needs one (a necessary condition, never too strict).
    Search by backtracking over tiny graphs; past `budget` steps the prefix is given the benefit
    of the doubt.
    """
    if state.last == "end":
        unfinished: set[int] = set()
    else:
        unfinished = {state.current, *state.branches, *(atom for atom, _, _ in state.rings.values())}

    def can_take(atom: int) -> bool:
        return state.pi[atom] in ("c", "n") and not state.double[atom] and state.used[atom] < state.capacity[atom]

    needy = [a for a in range(len(state.pi)) if a not in unfinished and can_take(a)]
    partner: dict[int, int] = {}
    steps = 0

    def cover(k: int) -> bool:
        nonlocal steps
        steps += 1
        if steps > budget:
            return True
        while k < len(needy) and needy[k] in partner:
            k += 1
        if k == len(needy):
            return True
        atom = needy[k]
        for other in state.pi_bonds[atom]:
            if other not in partner and can_take(other):
                partner[atom], partner[other] = other, atom
                if cover(k + 1):
                    return True
                del partner[atom], partner[other]
        return False

    return cover(0)


class SmilesGrammar(LogitsProcessor):
    """Masks the tokens that cannot continue a parsable SMILES (one instance per `generate` call).

    Args:
        tokenizer: the generator's tokenizer (its vocabulary defines the token classes).
        greedy: the caller decodes greedily (one beam, no sampling): only the best allowed
            token of each row is found, checking tokens best first until one passes, and it
            alone is left unmasked. The decoded strings are the same as with the full mask;
            the Kekulé checks, most of the grammar's time, drop to about one per row and step.
    """

    def __init__(self, tokenizer: SmilesTokenizer, greedy: bool = False) -> None:
        self.tokenizer = tokenizer
        self.greedy = greedy
        self.kind: dict[int, str] = {}
        for token_id, token in enumerate(tokenizer.tokens):
            if token_id == tokenizer.eos_id:
                self.kind[token_id] = "end"
            elif token_id in (tokenizer.pad_id, tokenizer.bos_id, tokenizer.unk_id, tokenizer.mask_id):
                self.kind[token_id] = "special"
            elif token == "(":
                self.kind[token_id] = "open"
            elif token == ")":
                self.kind[token_id] = "close"
            elif token in _BONDS:
                self.kind[token_id] = "bond"
            elif token.isdigit() or token.startswith("%"):
                self.kind[token_id] = "ring"
            else:
                self.kind[token_id] = "atom"
        self.aromatic = {i: _is_aromatic(t) for i, t in enumerate(tokenizer.tokens) if self.kind[i] == "atom"}
        self.capacity = {i: _CAPACITY.get(t, 4) for i, t in enumerate(tokenizer.tokens) if self.kind[i] == "atom"}
        self.pi_role = {i: (t if t in ("c", "n") else "x") if self.aromatic[i] else ""
                        for i, t in enumerate(tokenizer.tokens) if self.kind[i] == "atom"}
        # Atom tokens of one class leave the same Kekulé options behind (one check per class).
        self._kekule_class = {i: ("atom", "pi" if role else "") if role != "x" else ("atom", "x")
                              for i, role in self.pi_role.items()}
        self.bond_order = {i: _BONDS[t] for i, t in enumerate(tokenizer.tokens) if self.kind[i] == "bond"}
        self.ring_label = {i: t for i, t in enumerate(tokenizer.tokens) if self.kind[i] == "ring"}
        # Plain lists: read for every row at every decoding step.
        self._by_kind = {k: [i for i, v in self.kind.items() if v == k] for k in ("atom", "open", "close", "bond")}
        self._prefixes: dict[tuple[int, ...], _Prefix | None] = {}

    def _advance(self, state: _Prefix, token_id: int) -> _Prefix | None:
        """The state after `token_id`, or None if the prefix is already beyond the grammar
        (e.g. it was forced by the caller); such rows are left unconstrained."""
        kind = self.kind.get(token_id, "special")
        new = state.copy()
        if kind == "atom":
            atom = len(new.aromatic)
            new.aromatic.append(self.aromatic[token_id])
            new.capacity.append(self.capacity[token_id])
            new.used.append(0)
            new.neighbours.append(set())
            new.pi.append(self.pi_role[token_id])
            new.double.append(False)
            new.pi_bonds.append(set())
            if new.last != "start":
                _link(new.neighbours, atom, new.current)
                new.used[atom] += new.order
                new.used[new.current] += new.order
                if new.order >= 2:
                    new.double[atom] = new.double[new.current] = True
                elif new.aromatic_bond and new.aromatic[atom] and new.aromatic[new.current]:
                    _link(new.pi_bonds, atom, new.current)
            new.current = atom
        elif kind == "ring":
            label = self.ring_label[token_id]
            if label in new.rings:
                other, order, opened_explicit = new.rings.pop(label)
                _link(new.neighbours, other, new.current)
                new.used[new.current] += max(order, new.order)
                new.used[other] += max(order, new.order) - order  # its share was booked at opening
                if max(order, new.order) >= 2:
                    new.double[other] = new.double[new.current] = True
                elif not (opened_explicit or new.explicit) and new.aromatic[other] and new.aromatic[new.current]:
                    _link(new.pi_bonds, other, new.current)
            else:
                new.rings[label] = (new.current, new.order, new.explicit)
                new.used[new.current] += new.order
        elif kind == "open":
            new.branches.append(new.current)
        elif kind == "close":
            if not new.branches:
                return None
            new.current = new.branches.pop()
        elif kind == "special":
            return None
        elif kind == "end":
            new.last = "end"
            return new
        if kind == "bond" and self.bond_order[token_id] >= 2:
            new.double[new.current] = True  # whatever it bonds to next
        new.order = self.bond_order[token_id] if kind == "bond" else 1
        new.explicit = kind == "bond"
        new.aromatic_bond = kind != "bond" or self.tokenizer.tokens[token_id] == ":"
        new.before_bond = state.last if kind == "bond" else ""
        new.last = kind
        return new

    def _state(self, prefix: tuple[int, ...]) -> _Prefix | None:
        if prefix in self._prefixes:
            return self._prefixes[prefix]
        if len(prefix) <= 1:  # only the start token
            state: _Prefix | None = _Prefix()
        else:
            parent = self._state(prefix[:-1])
            state = None if parent is None else self._advance(parent, prefix[-1])
        self._prefixes[prefix] = state
        return state

    def allowed(self, state: _Prefix) -> list[int]:
        """Token ids that may follow `state`."""
        ids = self._syntax_allowed(state)
        return ids if state.last == "end" else self._keep_kekulizable(state, ids)

    def _syntax_allowed(self, state: _Prefix) -> list[int]:
        """Token ids that may follow `state` by syntax, valence and ring sizes (Kekulé rule not applied)."""
        if state.last == "end":
            return [self.tokenizer.pad_id, self.tokenizer.eos_id]
        if state.last == "start":
            return list(self._by_kind["atom"])
        spare = state.spare()
        # A terminal atom (F, =O, ...) outside any branch would end the chain with a ring still open.
        dead_end = bool(state.rings) and not state.branches
        ids: list[int] = [t for t in self._by_kind["atom"] if state.order <= min(spare, self.capacity[t])
                          and not (dead_end and self.capacity[t] <= state.order)]
        if state.last in ("atom", "ring", "close", "open"):
            ids += [t for t in self._by_kind["bond"] if self.bond_order[t] <= spare]
        if state.last in ("atom", "ring", "close"):
            # A branch takes a bond; with a ring open outside any branch, one more must stay free.
            if spare >= (2 if dead_end else 1):
                ids += self._by_kind["open"]
            if state.branches:
                # Back at the branch point: outside any branch it must carry the chain on if a
                # ring is still open.
                point = state.branches[-1]
                if not (state.rings and len(state.branches) == 1 and state.capacity[point] <= state.used[point]):
                    ids += self._by_kind["close"]
            if not state.branches and not state.rings:
                ids.append(self.tokenizer.eos_id)
        if state.last in ("atom", "ring") or (state.last == "bond" and state.before_bond in ("atom", "ring")):
            for token_id, label in self.ring_label.items():
                if label not in state.rings:
                    # A bond symbol may precede an opening label ("C=1"), not a branch or close;
                    # outside a branch the atom must keep a bond free to carry the chain on.
                    if state.order + (0 if state.branches else 1) <= spare:
                        ids.append(token_id)
                    continue
                other, order, explicit = state.rings[label]
                if other == state.current or other in state.neighbours[state.current]:
                    continue  # "C11", or a second bond between the same two atoms
                extra = max(order, state.order)
                if extra > spare or extra - order > state.capacity[other] - state.used[other]:
                    continue
                if extra == spare and len(state.rings) > 1 and not state.branches:
                    continue  # the atom would be full with another ring still to close
                if state.aromatic[other] and state.aromatic[state.current] and not (explicit or state.explicit):
                    # Labels still open may close on this atom next ("c12"), shortening the ring.
                    if state.distance(other, state.current) + 1 not in _AROMATIC_RING_SIZES:
                        pending = {a for l, (a, _, _) in state.rings.items() if l != label}
                        options = [pending, *({a} for a in pending)] if pending else []
                        if not any(state.distance(other, state.current, bonded) + 1 in _AROMATIC_RING_SIZES
                                   for bonded in options):
                            continue
                ids.append(token_id)
        return ids

    def _keeps_kekulizable(self, state: _Prefix, token_id: int, verdict: dict[object, bool]) -> bool:
        """Whether the aromatic atoms `token_id` settles can still be kekulized (`verdict`
        caches one answer per token class for this state)."""
        kind = self.kind[token_id]
        if kind == "ring" and self.ring_label[token_id] not in state.rings:
            return True  # opening a ring settles nothing
        # A branch or a single bond settles nothing but commits the current atom to one more
        # bond (an n with two then has no room for a double bond).
        one_more = kind == "open" or (kind == "bond" and self.bond_order[token_id] < 2)
        key = "one more bond" if one_more else self._kekule_class.get(token_id, token_id)
        if key not in verdict:
            child = self._advance(state, token_id)
            if child is not None and one_more:
                child.used[child.current] += 1
            verdict[key] = child is None or _kekulizable(child)
        return verdict[key]

    def _keep_kekulizable(self, state: _Prefix, ids: list[int]) -> list[int]:
        """The tokens of `ids` after which the aromatic atoms they settle can still be kekulized
        (all of `ids` if none is left: the prefix was already beyond repair)."""
        if not any(state.aromatic):
            return ids  # no aromatic atom can be settled yet
        verdict: dict[object, bool] = {}
        kept = [token_id for token_id in ids if self._keeps_kekulizable(state, token_id, verdict)]
        return kept or ids

    def _closes(self, state: _Prefix, token_id: int) -> bool:
        """`token_id` closes a branch or an open ring."""
        kind = self.kind[token_id]
        return kind == "close" or (kind == "ring" and self.ring_label[token_id] in state.rings)

    def _greedy_pick(self, state: _Prefix, row_scores: list[float], top: int) -> int:
        """The token greedy decoding takes under the full mask of `__call__`, found lazily.

        Same rules in the same order: the Kekulé filter (all syntax-allowed tokens if none
        passes), then the end-of-string rule (the model wants to stop early: closing tokens
        first), then the raw scores if every allowed token is ruled out (-inf). Ties go to the
        lower token id, as argmax does.
        """
        ids = self._syntax_allowed(state)
        if not ids:
            return top
        ranked = sorted(ids, key=lambda t: (-row_scores[t], t))
        if state.last == "end" or not any(state.aromatic):
            def passes(token_id: int) -> bool:
                return True
        else:
            verdict: dict[object, bool] = {}

            def passes(token_id: int) -> bool:
                return self._keeps_kekulizable(state, token_id, verdict)

        best = next((t for t in ranked if passes(t)), None)  # None: no token passes, all are kept
        eos = self.tokenizer.eos_id
        if top == eos and not (best == eos or (best is None and eos in ids)):
            closing = [t for t in ranked if self._closes(state, t)]
            if best is None:
                pick = closing[0] if closing else ranked[0]
            else:
                pick = next((t for t in closing if passes(t)), best)
        else:
            pick = ranked[0] if best is None else best
        return top if row_scores[pick] == float("-inf") else pick

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.greedy:
            return self._greedy(input_ids, scores)
        masked = torch.full_like(scores, float("-inf"))
        for row, ids in enumerate(input_ids.tolist()):
            state = self._state(tuple(ids))
            if state is None:
                masked[row] = scores[row]
                continue
            allowed = self.allowed(state)
            if not allowed:  # a corner the rules did not foresee: leave it to the model
                masked[row] = scores[row]
                continue
            eos = self.tokenizer.eos_id
            if eos not in allowed and int(scores[row].argmax()) == eos:
                # The model wants to stop with a ring or branch still open: close them rather
                # than write on (what follows an unwanted continuation is mostly garbage).
                closing = [t for t in allowed if self.kind[t] == "close"
                           or (self.kind[t] == "ring" and self.ring_label[t] in state.rings)]
                allowed = closing or allowed
            masked[row, allowed] = scores[row, allowed]
            if not torch.isfinite(masked[row]).any():
                # Every allowed token was already ruled out (e.g. the end forced at the length
                # limit): the earlier rule wins, so that something can be written.
                masked[row] = scores[row]
        return masked

    def _greedy(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Greedy decoding: each row keeps only the token `_greedy_pick` chooses."""
        tops = scores.argmax(dim=-1).tolist()
        rows = scores.tolist()
        chosen = []
        for row, ids in enumerate(input_ids.tolist()):
            state = self._state(tuple(ids))
            chosen.append(tops[row] if state is None else self._greedy_pick(state, rows[row], tops[row]))
        index = torch.arange(len(chosen), device=scores.device)
        picked = torch.tensor(chosen, device=scores.device)
        masked = torch.full_like(scores, float("-inf"))
        masked[index, picked] = scores[index, picked]
        return masked


def _is_aromatic(token: str) -> bool:
    symbol = token.strip("[]")
    return symbol[:1].islower()
