"""Built-in procedural tasks: items made on the fly, seeded, with exact gold answers, for demos and tests.

`builtin:arith` writes short arithmetic word problems such as "Mia has 12 apples. She buys 7 more. How
many apples does she have now?". Each row is {question, answer, difficulty, expression}: the answer is
an integer as text and `expression` ("12 + 7") computes it, so a critic or a test can check the gold
answer without trusting the generator.

`builtin:events` and `builtin:triples` serve symbolic knowledge distillation (pipelines/symbolic.yaml).
An `events` item is a prompt slot for the teacher, {topic, shots, count}: write `count` everyday events
about `topic`, after few-shot turns `shots` ([{topic, events}]) drawn from a hand-written pool, so each
slot asks for something different. A `triples` item is a hand-written ATOMIC-style triple {head,
relation, question, answer} (the tail is the answer), held out for evaluating a student. The two share
`data.options` when one is the other's test_source, so each accepts the other's options.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthdistill.errors import DataError


def load_builtin(
    spec: str, options: dict[str, Any], seed: int, count: int, base_dir: Path
) -> Iterator[dict[str, Any]]:
    """Up to `count` items of the built-in task `spec` (the part after `builtin:`); one seed, one list.

    The items do not depend on `count`, so asking for more extends the list without changing its start.
    `base_dir` is unused: built-in tasks read no files.
    """
    task = _TASKS.get(spec.strip())
    if task is None:
        valid = ", ".join(sorted(_TASKS))
        raise DataError(
            f"unknown builtin task {spec!r}; valid tasks: {valid} (write for example builtin:arith)"
        )
    return task(options, seed, count)


def _arith(options: dict[str, Any], seed: int, count: int) -> Iterator[dict[str, Any]]:
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
    return _arith_items(int(difficulty), seed, count)


def _arith_items(difficulty: int, seed: int, count: int) -> Iterator[dict[str, Any]]:
    # A string seed hashes the same in every process; the difficulty in it keeps the levels apart.
    rng = random.Random(f"builtin:arith:{difficulty}:{seed}")
    seen: set[str] = set()
    misses = 0
    # The space of problems is far larger than any split, so a long run of repeats means it is used up.
    while len(seen) < count and misses < _MAX_REPEATS:
        story = _arith_problem(rng, difficulty)
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


def _arith_problem(rng: random.Random, difficulty: int) -> _Story:
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


def _events(options: dict[str, Any], seed: int, count: int) -> Iterator[dict[str, Any]]:
    _check_symbolic_options("events", options)
    per_prompt = options.get("per_prompt", 4)
    shots = options.get("shots", 2)
    rng = random.Random(f"builtin:events:{seed}")
    topics: list[str] = []
    for slot in range(count):
        # Each pass over the topics is shuffled afresh, so every topic comes up before any comes twice.
        if slot % len(_EVENT_TOPICS) == 0:
            topics = rng.sample(_EVENT_TOPICS, len(_EVENT_TOPICS))
        topic = topics[slot % len(_EVENT_TOPICS)]
        examples = rng.sample([name for name in _EVENT_SHOTS if name != topic], shots)
        yield {
            "slot": slot,
            "topic": topic,
            "count": per_prompt,
            "shots": [
                {"topic": name, "events": rng.sample(_EVENT_SHOTS[name], per_prompt)} for name in examples
            ],
        }


def _triples(options: dict[str, Any], seed: int, count: int) -> Iterator[dict[str, Any]]:
    # The seed does not change hand-written data; data.py shuffles the items with it.
    _check_symbolic_options("triples", options)
    from synthdistill.symbolic import RELATIONS

    items = [
        {"head": head, "relation": relation, "question": f"{head} {relation}", "answer": tail}
        for head, tails in _TRIPLES.items()
        for relation, tail in zip(RELATIONS, tails, strict=True)
    ]
    return iter(items[:count])


def _check_symbolic_options(task: str, options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - {"per_prompt", "shots"})
    if unknown:
        raise DataError(
            f"builtin:{task} has no option {unknown[0]!r}; valid options: per_prompt (events a prompt asks "
            f"for, 1 to 5) and shots (few-shot turns, 1 to 4)"
        )
    for name, low, high in (("per_prompt", 1, 5), ("shots", 1, 4)):
        value = options.get(name, low)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DataError(
                f"builtin:{task} option {name} must be an integer from {low} to {high} (got {value!r}); "
                f"fix data.options.{name}"
            )


_EVENT_TOPICS = [
    "cooking", "school", "work", "shopping", "sports", "travel", "friends", "family", "pets", "the weather",
    "health", "money", "music", "games", "the garden", "cleaning the house", "a birthday", "the beach",
    "a job interview", "moving house", "the doctor", "a wedding", "driving", "a rainy day", "the library",
    "a restaurant", "the gym", "a new neighbour", "the morning", "bedtime", "a party", "a phone",
    "a bus ride", "a picnic", "homework", "a holiday", "the park", "a concert", "a broken car",
    "a lost wallet",
]  # fmt: skip
# Few-shot events, five a topic (per_prompt is at most 5); none of them is a head of _TRIPLES.
_EVENT_SHOTS = {
    "cooking": ["PersonX bakes a cake for PersonY", "PersonX burns the toast",
                "PersonX cooks dinner for the family", "PersonX buys fresh vegetables",
                "PersonX tries a new recipe"],
    "school": ["PersonX studies for a test", "PersonX forgets the homework",
               "PersonX asks the teacher a question", "PersonX gets a good grade",
               "PersonX makes a new friend at school"],
    "work": ["PersonX is late for work", "PersonX gets a promotion", "PersonX finishes the report",
             "PersonX asks for a day off", "PersonX meets a new colleague"],
    "sports": ["PersonX runs a marathon", "PersonX scores a goal", "PersonX joins a tennis club",
               "PersonX hurts a knee", "PersonX watches the game with friends"],
    "travel": ["PersonX books a flight", "PersonX misses the train", "PersonX packs a suitcase",
               "PersonX visits a museum", "PersonX gets lost in the city"],
    "pets": ["PersonX adopts a puppy", "PersonX feeds the cat", "PersonX walks the dog",
             "PersonX takes the cat to the vet", "PersonX buys a bird cage"],
    "friends": ["PersonX calls an old friend", "PersonX lends PersonY some money",
                "PersonX forgets PersonY's birthday", "PersonX invites friends for dinner",
                "PersonX helps PersonY with homework"],
    "shopping": ["PersonX buys new shoes", "PersonX loses the receipt", "PersonX pays with cash",
                 "PersonX returns a broken toaster", "PersonX waits in a long line"],
}  # fmt: skip
# Hand-written tails, one a relation in the order of synthdistill.symbolic.RELATIONS (xIntent, xNeed, xAttr,
# xEffect, xReact, xWant, oEffect); "none" is ATOMIC's tail for an event done without intent.
_TRIPLES = {
    "PersonX drinks a cup of coffee": ["to wake up", "to make coffee", "sleepy", "feels awake", "awake",
                                       "to start work", "the barista gets paid"],
    "PersonX loses the car keys": ["none", "to have car keys", "careless", "looks for the keys", "worried",
                                   "to find the keys", "others help look for them"],
    "PersonX paints the kitchen": ["to make the kitchen look nice", "to buy paint", "creative",
                                   "gets paint on the hands", "proud", "to clean the brushes",
                                   "the family likes the new color"],
    "PersonX wins the lottery": ["to get rich", "to buy a ticket", "lucky", "gets a lot of money", "happy",
                                 "to spend the money", "friends ask for money"],
    "PersonX gives PersonY a gift": ["to make PersonY happy", "to buy a gift", "generous", "gets thanked",
                                     "happy", "to see PersonY open it", "PersonY feels loved"],
    "PersonX falls asleep on the bus": ["to rest", "to get on the bus", "tired", "misses the stop",
                                        "embarrassed", "to get off the bus", "the driver wakes PersonX up"],
    "PersonX plants a tree": ["to help nature", "to dig a hole", "caring", "gets dirty hands", "proud",
                              "to water the tree", "the neighbors get shade"],
    "PersonX cleans the room": ["to have a tidy room", "to get a broom", "tidy", "finds a lost sock",
                                "satisfied", "to relax", "the parents are pleased"],
    "PersonX breaks a glass": ["none", "to hold a glass", "clumsy", "cuts a finger", "sorry",
                               "to sweep up the pieces", "others step around the glass"],
    "PersonX learns to swim": ["to be safe in water", "to find a teacher", "brave", "gets wet", "confident",
                               "to swim in the sea", "the teacher is proud"],
    "PersonX writes a letter to PersonY": ["to stay in touch", "to get paper and a pen", "thoughtful",
                                           "posts the letter", "hopeful", "to get a reply",
                                           "PersonY reads the letter"],
    "PersonX gets caught in the rain": ["none", "to go outside", "unlucky", "gets wet", "cold",
                                        "to dry off", "others offer an umbrella"],
}  # fmt: skip

# Last, because it names the functions above.
_TASKS: dict[str, Callable[[dict[str, Any], int, int], Iterator[dict[str, Any]]]] = {
    "arith": _arith,
    "events": _events,
    "triples": _triples,
}
