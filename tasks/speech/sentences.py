"""Sentences for the synthesised corpus: a few hundred common words in command-like templates.

Digits alone are learned to near-zero error by any small net within minutes, which hides every
difference between architectures; short sentences over a larger vocabulary (with the spelling
irregularities of English) plus spoken digit strings keep the task hard at demo scale.
"""

from __future__ import annotations

import random

DIGITS = "zero one two three four five six seven eight nine".split()
NUMBERS = (DIGITS + "ten eleven twelve thirteen fifteen twenty thirty forty fifty sixty hundred "
           "thousand".split())
NOUNS = ("door window light lamp table chair kitchen garden house room car bus train plane boat road "
         "street city river mountain forest tree flower dog cat bird horse fish cow sheep book letter "
         "paper phone radio music song picture camera computer screen key box bag cup plate bottle "
         "water coffee tea milk bread apple orange egg cheese sugar salt rice soup cake dinner lunch "
         "breakfast morning evening night day week month year hour minute clock watch shirt shoe hat "
         "coat jacket bed sofa floor wall roof school office shop market bank hospital station park "
         "beach island bridge tower village doctor teacher friend mother father brother sister child "
         "family neighbour driver farmer island ticket money price message question answer idea story "
         "game team ball winter summer spring autumn weather rain snow wind sun moon star fire stone "
         "glass wood metal gold silver engine machine wheel").split()
VERBS = ("open close turn start stop move bring take give find keep leave send show tell call play "
         "read write watch clean wash cook paint fix check carry push pull lift drop hold throw catch "
         "build cut fill empty buy sell pay visit follow help ask answer meet").split()
ADJECTIVES = ("big small old new long short hot cold warm cool red blue green yellow black white brown "
              "grey dark bright quiet loud happy sad quick slow heavy light empty full clean dirty soft hard "
              "early late first last next other little young strong").split()
NAMES = "anna peter maria john lucy david sarah james emma oliver".split()
PLACES = "london paris berlin tokyo cairo sydney madrid boston".split()
SMALL = ("the a my your our their this that these those please now then today tomorrow yesterday "
         "again here there under over near behind before after into from with without and but or not "
         "very too it is was are were will can could should would must i you we they he she "
         "don't can't it's i'm we're that's won't isn't").split()
TIME_PHRASES = ("at noon", "at midnight", "in the morning", "in the evening", "on monday", "on friday",
                "next week", "last year")
UNITS = ("minutes", "hours", "days")


def vocabulary() -> list[str]:
    """Every word the generator can emit (sorted, unique)."""
    words = set(NUMBERS + NOUNS + VERBS + ADJECTIVES + NAMES + PLACES + SMALL + list(UNITS))
    words.update(n + "s" for n in NOUNS)  # "peter will paint four doors"
    words.update(w for phrase in TIME_PHRASES for w in phrase.split())
    words.update(("o'clock", "call", "to", "the"))
    return sorted(words)


def _time(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return f"at {rng.choice(NUMBERS[1:13])} o'clock"
    return rng.choice(TIME_PHRASES)


def _digits(rng: random.Random) -> str:
    return " ".join(rng.choice(DIGITS) for _ in range(rng.randint(3, 7)))


TEMPLATES = (
    lambda r: f"please {r.choice(VERBS)} the {r.choice(ADJECTIVES)} {r.choice(NOUNS)}",
    lambda r: f"{r.choice(VERBS)} the {r.choice(NOUNS)} {_time(r)}",
    lambda r: f"{r.choice(NAMES)} will {r.choice(VERBS)} {r.choice(NUMBERS[2:])} {r.choice(NOUNS)}s",
    lambda r: f"the {r.choice(NOUNS)} is {r.choice(['very', 'too', 'not'])} {r.choice(ADJECTIVES)}",
    lambda r: f"{r.choice(['i', 'we', 'they', 'you'])} can't {r.choice(VERBS)} the {r.choice(NOUNS)} "
              f"{r.choice(['here', 'there', 'now', 'today', 'tomorrow'])}",
    lambda r: f"{r.choice(NAMES)}'s {r.choice(NOUNS)} was {r.choice(ADJECTIVES)} and {r.choice(ADJECTIVES)}",
    lambda r: f"take the {r.choice(NOUNS)} from {r.choice(PLACES)} to {r.choice(PLACES)} {_time(r)}",
    lambda r: f"call {_digits(r)}",
    lambda r: _digits(r),
    lambda r: f"it's {r.choice(NUMBERS[1:])} {r.choice(UNITS)} to the {r.choice(NOUNS)}",
    lambda r: f"don't {r.choice(VERBS)} the {r.choice(ADJECTIVES)} {r.choice(NOUNS)} "
              f"{r.choice(['near', 'behind', 'under', 'over'])} the {r.choice(NOUNS)}",
)


def sentence(rng: random.Random) -> str:
    """One random sentence (lower case, words from :func:`vocabulary`)."""
    return rng.choice(TEMPLATES)(rng)


def split_sentences(rng: random.Random, num_train: int, num_val: int) -> tuple[list[str], list[str]]:
    """Training and validation sentences with no validation sentence ever seen in training."""
    val: list[str] = []
    held = set()
    while len(val) < num_val:
        s = sentence(rng)
        if s not in held:
            held.add(s)
            val.append(s)
    train = []
    while len(train) < num_train:
        s = sentence(rng)
        if s not in held:
            train.append(s)
    return train, val
