"""Class names and integer codes.

A data set names its classes in config; the challenge's are the default. One class may be
an *open-set* label (the challenge's Drift): it is never trained on, but may appear in test data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vqc.errors import ConfigError, DataError

_SEPARATORS = re.compile(r"[\s_\-]+")


def label_key(label: str) -> str:
    """What two spellings of one class share: case-folded, ``_``/``-``/space runs as one space."""
    return _SEPARATORS.sub(" ", str(label)).strip().casefold()

CHALLENGE_CLASS_NAMES: tuple[str, ...] = (
    "GOOD",
    "Boucle plate",
    "Lift-off blanc",
    "Lift-off noir",
    "Missing",
    "Short circuit MOS",
    "Drift",
)
CHALLENGE_OPEN_SET = "Drift"
CHALLENGE_GOOD = "GOOD"


@dataclass(frozen=True)
class ClassSet:
    """Ordered classes: code ``i`` is ``names[i]``.

    ``open_set`` names the label that is never trained on (or ``None``); ``good`` names the
    defect-free class, used by metrics that count escapes and false alarms.
    ``aliases`` maps other spellings found in label files to canonical names.
    """

    names: tuple[str, ...]
    open_set: str | None = None
    good: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        object.__setattr__(self, "names", names)
        if not names:
            raise ConfigError("classes: the class list is empty")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"classes: duplicate class names {dupes}")
        for role, value in (("open_set", self.open_set), ("good", self.good)):
            if value is not None and value not in names:
                raise ConfigError(f"classes.{role}={value!r} is not one of {list(names)}")
        if self.open_set is not None and names[-1] != self.open_set:
            raise ConfigError(
                f"classes.open_set={self.open_set!r} must be the last class name (its code follows "
                f"the trained classes'); got order {list(names)}"
            )
        for alias, target in self.aliases.items():
            if target not in names:
                raise ConfigError(f"classes.aliases: {alias!r} -> {target!r}, not a class name")

    @classmethod
    def challenge(cls) -> ClassSet:
        return cls(CHALLENGE_CLASS_NAMES, open_set=CHALLENGE_OPEN_SET, good=CHALLENGE_GOOD)

    @classmethod
    def from_config(
        cls,
        names: Sequence[str],
        open_set: str | None = None,
        good: str | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> ClassSet:
        return cls(tuple(names), open_set=open_set, good=good, aliases=dict(aliases or {}))

    def with_open_set(self, name: str) -> ClassSet:
        """These classes and, last, an open-set class ``name`` with no images: what an
        inspector answers for drift on a data set that has no drift images to train or test
        with (the trained classes keep their codes)."""
        if self.open_set is not None:
            return self
        if name in self.names:
            raise ConfigError(f"classes: {name!r} names a trained class and cannot be the "
                              "open-set (drift) answer; set data.classes.open_set to another "
                              "name")
        return ClassSet((*self.names, name), open_set=name, good=self.good,
                        aliases=self.aliases)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def open_set_code(self) -> int | None:
        return None if self.open_set is None else self.names.index(self.open_set)

    @property
    def good_code(self) -> int | None:
        return None if self.good is None else self.names.index(self.good)

    @property
    def trained_codes(self) -> list[int]:
        """Codes a classifier is trained on: every class except the open-set one."""
        return [i for i, n in enumerate(self.names) if n != self.open_set]

    @property
    def trained_names(self) -> list[str]:
        return [self.names[i] for i in self.trained_codes]

    def code(self, label: object, where: str = "") -> int:
        """The code of ``label``, given as a name, an alias or an integer code."""
        text = str(label).strip()
        text = self.aliases.get(text, text)
        if text in self.names:
            return self.names.index(text)
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None and number.is_integer() and 0 <= int(number) < len(self.names):
            return int(number)
        place = f"{where}: " if where else ""
        raise DataError(
            f"{place}unknown label {label!r}; expected one of {list(self.names)} "
            f"or a code 0..{len(self.names) - 1}"
        )

    def code_by_spelling(self, label: object) -> int | None:
        """The code of the class ``label`` spells another way (case, spaces, ``_`` and ``-``
        ignored, as training merges labels), or ``None``."""
        key = label_key(str(label))
        matches = [i for i, name in enumerate(self.names) if label_key(name) == key]
        return matches[0] if len(matches) == 1 else None

    def codes(self, labels: Iterable[object], where: str = "") -> list[int]:
        return [self.code(label, where) for label in labels]
