"""builtin:arith, short arithmetic word problems made on the fly, seeded, with exact gold answers.

A problem reads like "Mia has 12 apples. She buys 7 more. How many apples does she have now?". Each row is
{question, answer, difficulty, expression}: the answer is an integer as text and `expression` ("12 + 7")
computes it, so a critic or a test can check the gold answer without trusting the generator.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from synthdistill.errors import DataError


def arith(options: dict[str, Any], seed: int, count: int) -> Iterator[dict[str, Any]]:
    """Up to `count` unique word problems of `options["difficulty"]` (1, 2 or 3 steps; 1 by default)."""
    unknown = sorted(set(options) - {"difficulty"})
    if unknown:
        raise DataError(f"builtin:arith has no option {unknown[0]!r}; valid options: difficulty (1, 2 or 3)")
    difficulty = options.get("difficulty", 1)
    # bool is an int subclass, and `True in (1, 2, 3)` holds, so it is refused by name.
    if isinstance(difficulty, bool) or difficulty not in (1, 2, 3):
        raise DataError(
            f"builtin:arith option difficulty must be 1, 2 or 3 (got {difficulty!r}); "
            "set data.options.difficulty to one of them"
        )
    return _items(int(difficulty), seed, count)


def _items(difficulty: int, seed: int, count: int) -> Iterator[dict[str, Any]]:
    # A string seed hashes the same in every process; the difficulty in it keeps the levels apart.
    rng = random.Random(f"builtin:arith:{difficulty}:{seed}")
    seen: set[str] = set()
    misses = 0
    # The space of problems is far larger than any split, so a long run of repeats means it is used up.
    while len(seen) < count and misses < _MAX_REPEATS:
        story = _problem(rng, difficulty)
        if story.question in seen:
            misses += 1
            continue
        misses = 0
        seen.add(story.question)
        yield {
            "question": story.question,
            "answer": str(story.value),
            "difficulty": difficulty,
            "expression": story.expression,
        }


def _problem(rng: random.Random, difficulty: int) -> _Story:
    person = rng.choice(_PEOPLE)
    # A friend of the other pronoun keeps every "she" and "he" in the story pointing at one person.
    friend = rng.choice([other for other in _PEOPLE if other.he != person.he])
    story = _Story(rng, person, friend, rng.choice(_THINGS))
    if difficulty == 1 and rng.random() < 0.4:
        story.compare(rng.choice("+-*"))
        return story
    steps = difficulty
    if rng.random() < 0.25:
        story.start_groups()
        steps -= 1
    else:
        story.start()
    for _ in range(steps):
        story.step()
    story.ask()
    return story


@dataclass(frozen=True)
class _Person:
    name: str
    he: str
    him: str
    his: str


@dataclass(frozen=True)
class _Thing:
    things: str
    container: str
    containers: str


class _Story:
    """A problem being written: its sentences, the running value, and the expression that computes it."""

    def __init__(self, rng: random.Random, person: _Person, friend: _Person, thing: _Thing) -> None:
        self.rng = rng
        self.words = {
            "name": person.name,
            "friend": friend.name,
            "he": person.he,
            "He": person.he.capitalize(),
            "him": person.him,
            "his": person.his,
            "things": thing.things,
            "container": thing.container,
            "containers": thing.containers,
        }
        self.sentences: list[str] = []
        self.value = 0
        self.expression = ""
        self.last_op = ""

    @property
    def question(self) -> str:
        return " ".join(self.sentences)

    def start(self) -> None:
        a = self.rng.randint(3, 40)
        self._say(self.rng.choice(_STARTS), a=a)
        self.value, self.expression = a, str(a)

    def start_groups(self) -> None:
        a, b = self.rng.randint(2, 9), self.rng.randint(2, 12)
        self._say(self.rng.choice(_GROUP_STARTS), a=a, b=b)
        self.value, self.expression, self.last_op = a * b, f"{a} * {b}", "*"

    def step(self) -> None:
        # Every number is at least 2, so "2 apples" never reads "1 apples"; subtraction leaves at least 1,
        # and multiplication is kept to small totals.
        ops = ["+"] + ["-"] * (self.value >= 3) + ["*"] * (self.value <= 30)
        op = self.rng.choice(ops)
        if op == "+":
            b = self.rng.randint(2, 30)
        elif op == "-":
            b = self.rng.randint(2, self.value - 1)
        else:
            b = self.rng.randint(2, 4)
        self._say(self.rng.choice(_STEPS[op]), b=b)
        self._apply(op, b)

    def ask(self) -> None:
        questions = _QUESTIONS + _LEFT_QUESTIONS * (self.last_op == "-")
        self._say(self.rng.choice(questions))

    def compare(self, op: str) -> None:
        """One sentence about a second person relative to the first, then a question about either."""
        if op == "+":
            a, b = self.rng.randint(3, 40), self.rng.randint(2, 30)
        elif op == "-":
            a = self.rng.randint(5, 40)
            b = self.rng.randint(2, a - 1)
        else:
            a, b = self.rng.randint(2, 30), self.rng.randint(2, 5)
        self._say(self.rng.choice(_COMPARISONS[op]), a=a, b=b)
        self.value, self.expression = a, str(a)
        self._apply(op, b)

    def _apply(self, op: str, operand: int) -> None:
        if op == "+":
            self.value += operand
        elif op == "-":
            self.value -= operand
        else:
            self.value *= operand
        # Bracketing every earlier step keeps the expression's order of operations the story's order.
        left = f"({self.expression})" if " " in self.expression else self.expression
        self.expression = f"{left} {op} {operand}"
        self.last_op = op

    def _say(self, template: str, **numbers: int) -> None:
        self.sentences.append(template.format(**self.words, **numbers))


_MAX_REPEATS = 10_000

_SHE = ("she", "her", "her")
_HE = ("he", "him", "his")
_PEOPLE = [
    _Person(name, *pronouns)
    for name, pronouns in [
        ("Mia", _SHE), ("Liam", _HE), ("Emma", _SHE), ("Noah", _HE), ("Ava", _SHE), ("Lucas", _HE),
        ("Olivia", _SHE), ("Ethan", _HE), ("Zoe", _SHE), ("Omar", _HE), ("Sofia", _SHE), ("Kenji", _HE),
        ("Priya", _SHE), ("Diego", _HE), ("Amara", _SHE), ("Leo", _HE), ("Hana", _SHE), ("Ivan", _HE),
        ("Nora", _SHE), ("Samir", _HE), ("Chloe", _SHE), ("Mateo", _HE), ("Aisha", _SHE), ("Jonas", _HE),
        ("Elena", _SHE), ("Ravi", _HE), ("Grace", _SHE), ("Tariq", _HE), ("Lena", _SHE), ("Felix", _HE),
        ("Yara", _SHE), ("Kofi", _HE), ("Maya", _SHE), ("Hugo", _HE), ("Ines", _SHE), ("Arjun", _HE),
    ]
]  # fmt: skip
_THINGS = [
    _Thing(things, container, containers)
    for things, container, containers in [
        ("apples", "basket", "baskets"), ("marbles", "jar", "jars"), ("stickers", "sheet", "sheets"),
        ("pencils", "box", "boxes"), ("books", "shelf", "shelves"), ("cookies", "tray", "trays"),
        ("stamps", "page", "pages"), ("shells", "bucket", "buckets"), ("coins", "pouch", "pouches"),
        ("cards", "pack", "packs"), ("balloons", "bunch", "bunches"), ("oranges", "crate", "crates"),
        ("crayons", "box", "boxes"), ("beads", "bag", "bags"), ("toy cars", "box", "boxes"),
        ("buttons", "jar", "jars"), ("eggs", "carton", "cartons"), ("cupcakes", "tray", "trays"),
        ("tomatoes", "basket", "baskets"), ("postcards", "pack", "packs"), ("seeds", "packet", "packets"),
        ("candles", "box", "boxes"), ("ribbons", "bag", "bags"), ("pebbles", "bucket", "buckets"),
    ]
]  # fmt: skip

_STARTS = [
    "{name} has {a} {things}.",
    "{name} starts with {a} {things}.",
    "{name} owns {a} {things}.",
    "{name} keeps {a} {things} at home.",
]
_GROUP_STARTS = [
    "{name} has {a} {containers} of {things} with {b} {things} in each.",
    "{name} buys {a} {containers} of {things}. Each {container} holds {b} {things}.",
    "{name} fills {a} {containers} with {b} {things} each.",
]
_STEPS = {
    "+": [
        "{He} buys {b} more.",
        "{He} finds {b} more {things}.",
        "{friend} gives {him} {b} more.",
        "Then {he} gets {b} more {things} from {friend}.",
        "Later, {he} collects {b} more {things}.",
    ],
    "-": [
        "{He} gives {b} to {friend}.",
        "{He} gives {b} of them to {friend}.",
        "{He} loses {b} {things}.",
        "Then {he} sells {b} of them.",
        "{friend} takes {b} of {his} {things}.",
    ],
    "*": [
        "Then {he} ends up with {b} times as many {things} as before.",
        "After a trade, {he} has {b} times as many {things} as before.",
        "By the end of the week, {he} has {b} times as many {things} as before.",
    ],
}
_QUESTIONS = [
    "How many {things} does {name} have now?",
    "How many {things} does {he} have now?",
    "How many {things} does {name} have in the end?",
    "How many {things} does {name} end up with?",
]
_LEFT_QUESTIONS = ["How many {things} does {name} have left?"]
_COMPARISONS = {
    "+": [
        "{name} has {a} {things} and {friend} has {b} {things}. How many {things} do they have together?",
        "{name} has {a} {things}. {friend} has {b} {things}. How many {things} do they have in total?",
        "{name} has {a} {things}. {friend} has {b} more {things} than {name}. "
        "How many {things} does {friend} have?",
    ],
    "-": [
        "{name} has {a} {things}. {friend} has {b} fewer {things} than {name}. "
        "How many {things} does {friend} have?",
        "{name} has {a} {things} and gives {b} of them away. How many {things} does {name} have left?",
    ],
    "*": [
        "{name} has {a} {things}. {friend} has {b} times as many {things} as {name}. "
        "How many {things} does {friend} have?",
    ],
}
