"""English words spoken with a foreign accent by Festival's Czech, Finnish, Italian and Russian speakers.

Real speakers of keywords are not all native speakers. Festival's non-English voices are
recordings of real people (two Czech, two Finnish, one Italian and one Russian speaker here); fed
English spelling they read it by their own language's rules ("right" comes out as "rigt"). So
each word is first turned into its English pronunciation (espeak-ng's IPA,
:func:`speech_synth.phonemes`) and that is respelled with the speaker's own letters
(:func:`respell`): the Czech speaker reads "rajt", the Finn and the Italian "rait", the Russian
"райт" -- English words as those speakers say them. Any word espeak-ng can pronounce works, so
custom keywords get accented speakers too.

Needs Festival with the voices (``apt-get install festival festvox-czech-machac
festvox-czech-dita festvox-suopuhe-mv festvox-suopuhe-lj festvox-itapc16k festvox-ru``) and
espeak-ng from the ``[speech]`` extra; :class:`~edgeship.errors.MissingDependencyError` says
which is missing. Variation per utterance is that of :mod:`~edgeship.models.speech_festival`
(rate, pitch target, warp, punctuation), drawn from ``(word, seed)``, so a list gives the same
clips every time.

Example:
    >>> from edgeship.models import speech_accented as sa
    >>> [sa.respell_phonemes("ɹˈaɪt", lang) for lang in ("cs", "fi", "it", "ru")]
    ['rajt', 'rait', 'rait', 'райт']
    >>> sa.respell_phonemes("ʃˈiːlə", "it"), sa.respell_phonemes("kˈæt", "it"), sa.respell_phonemes("tʃˈɜːtʃ", "cs")
    ('scile', 'chet', 'čérč')
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from edgeship.errors import InputSpecError, MissingDependencyError

from . import speech_festival as sfe
from . import speech_synth as ss

#: The speakers: Festival voice -> (language, Debian package).
SPEAKERS = {
    "czech_machac": ("cs", "festvox-czech-machac"),
    "czech_dita": ("cs", "festvox-czech-dita"),
    "hy_fi_mv_diphone": ("fi", "festvox-suopuhe-mv"),
    "suo_fi_lj_diphone": ("fi", "festvox-suopuhe-lj"),
    "pc_diphone": ("it", "festvox-itapc16k"),
    "msu_ru_nsh_clunits": ("ru", "festvox-ru"),
}
VOICES = tuple(SPEAKERS)
PACKAGES = {v: pkg for v, (_, pkg) in SPEAKERS.items()}
STYLES = sfe.STYLES
#: The character set each language's voices read.
ENCODINGS = {"cs": "iso-8859-2", "fi": "latin-1", "it": "ascii", "ru": "utf-8"}

# English (espeak-ng en-us IPA) -> letters a speaker of each language reads as the nearest sounds.
# Vowel length is spelt as the language spells it (Czech accents, Finnish doubling; Italian has none).
_VOWELS = {
    #        cs     fi     it    ru  (Russian E is е after a consonant, э elsewhere)
    "iː": ("í", "ii", "i", "и"), "i": ("i", "i", "i", "и"), "ɪ": ("i", "i", "i", "и"), "ᵻ": ("i", "i", "i", "и"),
    "eɪ": ("ej", "ei", "ei", "Eй"), "e": ("e", "e", "e", "E"), "ɛ": ("e", "e", "e", "E"), "æ": ("e", "ä", "e", "E"),
    "ə": ("e", "e", "e", "E"), "ɐ": ("a", "a", "a", "а"), "ʌ": ("a", "a", "a", "а"), "ɑː": ("á", "aa", "a", "а"),
    "ɑ": ("a", "a", "a", "а"), "aɪ": ("aj", "ai", "ai", "ай"), "aʊ": ("au", "au", "au", "ау"), "a": ("a", "a", "a", "а"),
    "ɔɪ": ("oj", "oi", "oi", "ой"), "ɔː": ("ó", "oo", "o", "о"), "ɔ": ("o", "o", "o", "о"), "oʊ": ("ou", "ou", "ou", "оу"),
    "o": ("o", "o", "o", "о"), "uː": ("ú", "uu", "u", "у"), "u": ("u", "u", "u", "у"), "ʊ": ("u", "u", "u", "у"),
    "ɜː": ("ér", "öör", "er", "Eр"), "ɜ": ("er", "ör", "er", "Eр"), "ɚ": ("er", "er", "er", "Eр"),
    "iə": ("ije", "ie", "ie", "иE"), "eə": ("é", "ee", "e", "E"),
}
_CONSONANTS = {
    #        cs     fi     it    ru  (Italian k/g/tʃ/dʒ/ʃ are placeholders resolved by the next letter)
    "tʃ": ("č", "ts", "C", "ч"), "dʒ": ("dž", "ds", "J", "дж"), "ʃ": ("š", "s", "S", "ш"), "ʒ": ("ž", "s", "S", "ж"),
    "θ": ("t", "t", "t", "с"), "ð": ("d", "d", "d", "з"), "ŋ": ("ng", "ng", "n", "нг"), "ɹ": ("r", "r", "r", "р"),
    "r": ("r", "r", "r", "р"), "ɾ": ("t", "t", "t", "т"), "j": ("j", "j", "i", "й"), "w": ("u", "v", "u", "у"),
    "h": ("h", "h", "", "х"), "x": ("ch", "h", "K", "х"), "ʔ": ("", "", "", ""), "k": ("k", "k", "K", "к"),
    "ɡ": ("g", "g", "G", "г"), "g": ("g", "g", "G", "г"), "z": ("z", "s", "s", "з"), "p": ("p", "p", "p", "п"),
    "b": ("b", "b", "b", "б"), "t": ("t", "t", "t", "т"), "d": ("d", "d", "d", "д"), "f": ("f", "f", "f", "ф"),
    "v": ("v", "v", "v", "в"), "s": ("s", "s", "s", "с"), "m": ("m", "m", "m", "м"), "n": ("n", "n", "n", "н"),
    "l": ("l", "l", "l", "л"),
}
_TABLE = {**_VOWELS, **_CONSONANTS}
_LANGS = ("cs", "fi", "it", "ru")
_IGNORED = "ˈˌ̩-"  # stress, syllabic mark, hyphen
# Italian: the letter for k / g / tʃ / dʒ / ʃ depends on whether e or i follows.
_IT_SOFT = {"K": ("ch", "c"), "G": ("gh", "g"), "C": ("c", "ci"), "J": ("g", "gi"), "S": ("sc", "sci")}
_RU_CONSONANTS = "бвгджзйклмнпрстфхцчшщ"


def respell_phonemes(ipa: str, language: str) -> str:
    """Respell espeak-ng's IPA for an English word with ``language``'s letters (``cs``, ``fi``, ``it``, ``ru``).

    Raises:
        InputSpecError: an unknown language, or a sound with no spelling in the table.
    """
    if language not in _LANGS:
        raise InputSpecError(f"respell: expected a language of {', '.join(_LANGS)}, given {language!r}")
    col = _LANGS.index(language)
    out, i = [], 0
    while i < len(ipa):
        if ipa[i] in _IGNORED or ipa[i] == " ":
            out.append(" " if ipa[i] == " " and out and out[-1] != " " else "")
            i += 1
            continue
        for n in (2, 1):
            if ipa[i:i + n] in _TABLE:
                out.append(_TABLE[ipa[i:i + n]][col])
                i += n
                break
        else:
            raise InputSpecError(f"respell: no {language} spelling for the sound {ipa[i]!r} in {ipa!r}; leave "
                                 "'accented' out of the voices for this word")
    text = "".join(out).strip()
    if language == "it":
        text = "".join(_IT_SOFT[c][0 if text[k + 1:k + 2] in ("e", "i") else 1] if c in _IT_SOFT else c
                       for k, c in enumerate(text))
    if language == "ru":
        text = "".join(("е" if k and text[k - 1] in _RU_CONSONANTS else "э") if c == "E" else c
                       for k, c in enumerate(text))
    return text


def respell(word: str, language: str) -> str:
    """``word``'s American English pronunciation (espeak-ng) in ``language``'s spelling.

    Example:
        >>> respell("right", "cs")   # doctest: +SKIP
        'rajt'
    """
    return respell_phonemes(ss.phonemes(word, "en-us"), language)


def data_facts() -> dict:
    """What synthetic data made by this engine depends on (part of its cache key): Festival's
    version, the voices, the styles and a short sha256 of the respelling tables."""
    blob = json.dumps([_TABLE, _IT_SOFT, _RU_CONSONANTS, SPEAKERS, ENCODINGS], sort_keys=True, ensure_ascii=False)
    return {"version": version(), "voices": list(VOICES), "styles": list(STYLES),
            "respelling": hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]}


def available() -> bool:
    """True when espeak-ng (the ``[speech]`` extra), Festival and every voice in :data:`VOICES` are installed."""
    return ss.available() and sfe.available(PACKAGES)


def version() -> str:
    """Festival's version line, after checking that the voices and espeak-ng are installed.

    Raises:
        MissingDependencyError: Festival, one of the voices or espeak-ng is missing.
    """
    if not ss.available():
        raise MissingDependencyError("accented voices need espeak-ng for English pronunciations: pip install "
                                     "'edgeship[speech]'")
    return sfe._facts(sfe.binary(), PACKAGES)


def utterance_params(word: str, seed: int) -> sfe.FestivalParams:
    """The voice and its variation that :func:`generate` uses for ``(word, seed)``."""
    return sfe.random_params(np.random.default_rng([seed, *word.encode("utf-8"), 5]), VOICES)


def _alternatives(word: str, p: sfe.FestivalParams, spelt: Dict[tuple, str]) -> list:
    """What to say instead when Festival crashes on an utterance (its diphone voices do on a few
    inputs, e.g. the Italian one on "ed" and some questions): the same voice as a plain word,
    then each other voice in :data:`VOICES` order, with the same rate, pitch and warp."""
    order = [p.voice] + [v for v in VOICES if v != p.voice]
    return [(spelt[(word, SPEAKERS[v][0])], replace(p, voice=v, style="{w}")) for v in order]


def generate_lists(lists: Sequence[Sequence], done: Optional[Callable[[int], None]] = None) -> List[np.ndarray]:
    """:func:`generate` for each list (one ``festival`` run per list); ``done(n)`` is called as
    each list is finished, with its number of clips."""
    lists = ss.word_lists(lists)
    if any(lists):
        version()
    words = sorted({w.strip() for items in lists for w, _ in items})
    spelt = {(w, lang): respell(w, lang) for w in words for lang in _LANGS}
    encodings = {v: ENCODINGS[lang] for v, (lang, _) in SPEAKERS.items()}

    def choose(word: str, rng: np.random.Generator):
        p = sfe.random_params(rng, VOICES)
        return spelt[(word, SPEAKERS[p.voice][0])], p

    return sfe.render_word_lists(lists, done, packages=PACKAGES, choose=choose, tag=5, encodings=encodings,
                                 alternatives=lambda w, p: _alternatives(w, p, spelt))


def generate(items: Sequence) -> np.ndarray:
    """Clips ``[N, 16000]`` float32 for ``items``, a list of ``(word, seed)`` pairs, in order."""
    return generate_lists([items])[0]
