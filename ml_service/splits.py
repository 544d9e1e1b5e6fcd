"""Training and test splits as in the MiewID paper: individuals with fewer than 3 annotations are left out
of training; the test set takes at most 10 annotations per individual and one per encounter; half of the
test individuals are never seen in training, the other half have their other photos in training. The same
split scores the active and the candidate model, so the comparison is fair."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from ml_service.evaluation import Item

MIN_TRAIN = 3
MAX_TEST = 10


@dataclass(frozen=True)
class Split:
    train: list[Item]
    test: list[Item]
    unseen: frozenset[str]  # "species/individual" of test individuals absent from training

    def unseen_test(self) -> list[Item]:
        return [i for i in self.test if identity(i) in self.unseen]


def identity(item: Item) -> str:
    return f"{item.species}/{item.individual}"


def _one_per_encounter(items: list[Item]) -> list[Item]:
    seen: set[str] = set()
    kept = []
    for item in items:
        if item.encounter not in seen:
            seen.add(item.encounter)
            kept.append(item)
    return kept


def paper_split(items: Sequence[Item], test_fraction: float = 0.2, seed: int = 0) -> Split:
    rng = random.Random(seed)
    by_identity: dict[str, list[Item]] = defaultdict(list)
    for item in sorted(items, key=lambda i: str(i.path)):
        by_identity[identity(item)].append(item)
    for members in by_identity.values():
        rng.shuffle(members)
    # A test individual needs two photos from different encounters (one is found by the other); one that
    # also trains needs at least two more for training.
    testable = sorted(k for k, v in by_identity.items() if len(_one_per_encounter(v)) >= 2)
    rng.shuffle(testable)
    chosen = testable[: round(test_fraction * len(testable))]
    unseen = set(chosen[: len(chosen) // 2])
    seen = {k for k in chosen[len(chosen) // 2 :] if len(by_identity[k]) >= 2 + MIN_TRAIN}
    test: list[Item] = []
    train: list[Item] = []
    for key, members in by_identity.items():
        if key in unseen:
            test += _one_per_encounter(members)[:MAX_TEST]
        elif key in seen:
            picked = _one_per_encounter(members)[: min(MAX_TEST, (len(members) - MIN_TRAIN))]
            test += picked
            train += [m for m in members if m not in picked]
        else:
            train += members
    counts = Counter(identity(i) for i in train)
    train = [i for i in train if counts[identity(i)] >= MIN_TRAIN]
    return Split(train, test, frozenset(unseen))
