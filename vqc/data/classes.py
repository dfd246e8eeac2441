"""The class list's former home: ``ClassSet`` and the challenge's class names live in
``vqc.classes`` (metrics, inspection and data all use them); imported here for older code."""

from vqc.classes import CHALLENGE_CLASS_NAMES, CHALLENGE_GOOD, CHALLENGE_OPEN_SET, ClassSet

__all__ = ["CHALLENGE_CLASS_NAMES", "CHALLENGE_GOOD", "CHALLENGE_OPEN_SET", "ClassSet"]
