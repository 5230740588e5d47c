"""builtin:events and builtin:triples, the hand-written data of symbolic knowledge distillation
(pipelines/symbolic.yaml).

An `events` item is a prompt slot for the teacher, {topic, shots, count}: write `count` everyday events
about `topic`, after few-shot turns `shots` ([{topic, events}]) drawn from a hand-written pool, so each
slot asks for something different. A `triples` item is a hand-written ATOMIC-style triple {head,
relation, question, answer} (the tail is the answer), held out for evaluating a student. The two share
`data.options` when one is the other's test_source, so each accepts the other's options.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from synthdistill.errors import DataError


def events(options: dict[str, Any], seed: int, count: int) -> Iterator[dict[str, Any]]:
    """`count` prompt slots asking for everyday events, every topic once before any topic twice."""
    _check_options("events", options)
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


def triples(options: dict[str, Any], seed: int, count: int) -> Iterator[dict[str, Any]]:
    """Up to `count` hand-written triples, each head with one tail a relation."""
    # The seed does not change hand-written data; data.py shuffles the items with it.
    _check_options("triples", options)
    from synthdistill.symbolic import RELATIONS

    items = [
        {"head": head, "relation": relation, "question": f"{head} {relation}", "answer": tail}
        for head, tails in _TRIPLES.items()
        for relation, tail in zip(RELATIONS, tails, strict=True)
    ]
    return iter(items[:count])


def _check_options(task: str, options: dict[str, Any]) -> None:
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
