"""Caption -> ``word/POS`` tokens in the HumanML3D style (docs/data.md#folder-layout).

The official tokens come from spaCy ``en_core_web_sm``: hyphens removed, non-alphabetic tokens dropped, nouns and
verbs lemmatised (except the word ``left``), universal POS tags. :func:`tag_caption` uses spaCy when it and
that model are installed; otherwise a small rule-based tagger (:func:`fallback_tag`) with a lexicon of the
words that dominate motion captions and of ~200 verbs of motion (any inflection: "carries", "picked" are VERB,
"a kick" is a NOUN). The fallback is meant for new captions of demo/custom datasets; its
tags can differ from spaCy's on unusual sentences (unknown words default to NOUN, ``-ly`` words to ADV,
``-ing``/``-ed`` words to VERB).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable

logger = logging.getLogger(__name__)

_LEXICON: dict[str, str] = {}
for _pos, _words in {
    "DET": "a an the this that these those each every some any another both all no",
    "PRON": "he she it they them him her his their its itself himself herself themselves someone somebody "
    "person's something one who which what",
    "ADP": "with to from in on at into onto over under up down around across through along toward towards "
    "behind near of by for off out about after before while like above below against between",
    "AUX": "is are was were be been being has have had does do did will would can could should may might",
    "CCONJ": "and or but then so",
    "SCONJ": "as if because until when though",
    "PART": "not",
    "NUM": "two three four five six seven eight nine ten twice once",
    "ADJ": "left right other few several big small large high low quick slow normal steady "
    "circular full short long wide narrow crouched upright",
    "ADV": "forward forwards backward backwards back again then slowly quickly fast away together also still "
    "around upward downward very too once slightly straight ahead",
    "VERB": "walk walks walking walked run runs running ran jump jumps jumping jumped turn turns turning turned "
    "kick kicks kicking kicked punch punches punching punched dance dances dancing danced spin spins "
    "spinning spun crawl crawls crawling crawled roll rolls rolling rolled stand stands standing stood "
    "get gets getting got rise rises rising rose lie lies lying lay flip flips flipping flipped "
    "swing swings swinging swung raise raises raising raised lift lifts lifting lifted wave waves "
    "waving waved step steps stepping stepped move moves moving moved go goes going went land lands "
    "landing landed lean leans leaning leaned bend bends bending bent sit sits sitting sat push pushes "
    "pushing pushed throw throws throwing threw hop hops hopping hopped perform performs performing "
    "performed do does doing did make makes making made take takes taking took start starts starting "
    "started stop stops stopping stopped continue continues continuing continued return returns",
    "NOUN": "person man woman someone figure body arm arms hand hands leg legs foot feet knee knees head shoulder "
    "shoulders hip hips waist chest back floor ground circle step steps pace side direction air time "
    "times position place way front motion kick punch jump flip cartwheel dance roll spin crawl turn "
    "degrees stance ball",
}.items():
    for _w in _words.split():
        _LEXICON.setdefault(_w, _pos)

# Irregular lemmas (verbs and nouns); regular ones are handled by suffix rules.
# Irregular verb forms both lemmatisers know.
_IRREGULAR_VERBS = {
    "ran": "run",
    "spun": "spin",
    "stood": "stand",
    "got": "get",
    "rose": "rise",
    "lay": "lie",
    "lying": "lie",
    "swung": "swing",
    "went": "go",
    "goes": "go",
    "bent": "bend",
    "sat": "sit",
    "threw": "throw",
    "did": "do",
    "does": "do",
    "made": "make",
    "took": "take",
}

_LEMMAS = {
    **_IRREGULAR_VERBS,
    "feet": "foot",
    "knees": "knee",
    "steps": "step",
    "running": "run",
    "spinning": "spin",
    "stepping": "step",
    "hopping": "hop",
    "flipping": "flip",
    "dancing": "dance",
    "making": "make",
    "taking": "take",
    "moving": "move",
    "rising": "rise",
    "raising": "raise",
    "waving": "wave",
    "sitting": "sit",
    "getting": "get",
    "stopping": "stop",
    "continuing": "continue",
    "performing": "perform",
    "leaning": "lean",
    "people": "person",
}


_BASES = frozenset(w for w, p in _LEXICON.items() if p in ("NOUN", "VERB") and not w.endswith(("ed", "ing")))

# Verbs of motion captions (base forms). Any inflection of one of them is a VERB unless a determiner, a
# possessive or an adjective comes right before it ("a kick", "his step"), which makes it a NOUN.
_MOTION_VERBS = frozenset(
    """
walk run jog sprint jump hop skip leap turn kick punch dance spin twirl crawl roll stand get rise lie flip swing
raise lift wave step move go land lean bend sit push pull throw catch pick carry hold grab reach put place drop
lower set bring take give hand pass make do start stop continue return perform play climb descend ascend kneel
squat crouch stretch bow nod shake clap wipe wash brush scratch rub touch tap point look face stare watch
balance stumble trip fall slip slide shuffle march stomp stamp tiptoe sneak limp stagger sway rock bounce
twist rotate swim fly flap salute stir pour drink eat open close fold wrap hit strike box fight block dodge duck
cross circle pace wander stroll spread extend straighten lay rest wait pause hug lunge dribble shoot row paddle
cartwheel backflip somersault dive bob wiggle wobble shrug cover swat sweep mop cook chop cut grasp jab
""".split()
)
_VERB_IRREGULAR = {
    **_IRREGULAR_VERBS,
    "caught": "catch",
    "held": "hold",
    "fell": "fall",
    "brought": "bring",
    "gave": "give",
    "put": "put",
    "leapt": "leap",
    "dove": "dive",
    "flew": "fly",
    "swam": "swim",
    "struck": "strike",
    "drank": "drink",
    "ate": "eat",
    "shook": "shake",
    "set": "set",
    "cut": "cut",
    "hit": "hit",
    "laid": "lay",
    "knelt": "kneel",
    "lit": "light",
}
_NOUN_CONTEXT = frozenset(
    "a an the this that these those each every another his her their its my your our "
    "left right big small large high low quick slow short long wide full single double "
    "one two three few several".split()
)


def _verb_lemma(word: str) -> str | None:
    """The base form if ``word`` is an inflection of a motion verb ("carries" -> "carry", "stepped" -> "step")."""
    if word in _VERB_IRREGULAR:
        return _VERB_IRREGULAR[word]
    if word in _MOTION_VERBS:
        return word
    candidates = []
    for suffix, repls in (
        ("ies", ("y",)),
        ("ied", ("y",)),
        ("es", ("", "e")),
        ("s", ("",)),
        ("ing", ("", "e")),
        ("ed", ("", "e")),
        ("d", ("",)),
    ):
        if word.endswith(suffix):
            stem = word[: -len(suffix)]
            candidates += [stem + r for r in repls]
            if len(stem) >= 2 and stem[-1] == stem[-2] and suffix in ("ing", "ed"):
                candidates.append(stem[:-1])  # stepping -> step, hopped -> hop
    return next((c for c in candidates if c in _MOTION_VERBS), None)


def _lemma(word: str, pos: str) -> str:
    if word == "left" or pos not in ("NOUN", "VERB"):
        return word
    if word in _LEMMAS:
        return _LEMMAS[word]
    for stem in (word[:-1], word[:-2], word[:-3], word[:-3] + "e", word[:-2] + "e"):
        if len(stem) >= 2 and stem != word and stem in _BASES and word.endswith(("s", "d", "ing")):
            return stem
    for suffix, repl in (
        ("ies", "y"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("sses", "ss"),
        ("ing", ""),
        ("ed", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + repl
    return word


def _words(caption: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z]+|[^A-Za-z\s]+", caption.replace("-", "").lower()) if w.isalpha()]


def fallback_tag(caption: str) -> list[str]:
    """Rule-based ``word/POS`` tokens (no dependencies). Deterministic; see the module docstring."""
    tokens = []
    words = _words(caption)
    for i, word in enumerate(words):
        pos = _LEXICON.get(word)
        verb = _verb_lemma(word) if pos in (None, "VERB", "NOUN") and word not in ("left", "right") else None
        if verb is not None:
            noun = i > 0 and words[i - 1] in _NOUN_CONTEXT
            tokens.append(f"{_lemma(word, 'NOUN')}/NOUN" if noun else f"{verb}/VERB")
            continue
        if pos is None:
            if word.endswith("ly"):
                pos = "ADV"
            elif word.endswith(("ing", "ed")):
                pos = "VERB"
            else:
                pos = "NOUN"
        # 'left'/'right' after a determiner/possessive are adjectives or nouns; keep spaCy's usual ADJ/NOUN split.
        if word in ("left", "right") and i + 1 < len(words) and _LEXICON.get(words[i + 1]) == "NOUN":
            pos = "ADJ"
        elif word in ("left", "right") and i > 0 and words[i - 1] in ("the", "to", "his", "her", "their"):
            pos = "NOUN"
        elif word in ("left", "right"):
            pos = "ADV"
        tokens.append(f"{_lemma(word, pos)}/{pos}")
    return tokens


@functools.lru_cache(maxsize=1)
def _spacy_tagger() -> Callable[[str], list[str]] | None:
    try:
        import spacy  # optional dependency

        nlp = spacy.load("en_core_web_sm")
    except (ImportError, OSError):
        return None

    def tag(caption: str) -> list[str]:
        tokens = []
        for tok in nlp(caption.replace("-", "")):
            word = tok.text
            if not word.isalpha():
                continue
            if tok.pos_ in ("NOUN", "VERB") and word != "left":
                tokens.append(f"{tok.lemma_}/{tok.pos_}")
            else:
                tokens.append(f"{word}/{tok.pos_}")
        return tokens

    return tag


def tag_caption(caption: str, use_spacy: bool = True) -> list[str]:
    """``word/POS`` tokens of a caption: spaCy ``en_core_web_sm`` if available (and allowed), else the fallback."""
    tagger = _spacy_tagger() if use_spacy else None
    if tagger is None:
        return fallback_tag(caption)
    return tagger(caption)
