"""Seeded generator of realistic municipal tables and mails (issue 8).

``make_case(seed)`` gives one case: a file or a whole mail built from one value per
dimension (content, layout, number form, date form, name form, name pool, file type,
wrapping, size), with the verdict and counts the domain rules expect. See GAPS.md for
what the engine misses today.
"""

from .cases import Case, make_case, make_letter_case, make_people_letter_case
from .spec import Expected, Spec, expected_for, sample_spec

__all__ = [
    "Case",
    "Expected",
    "Spec",
    "expected_for",
    "make_case",
    "make_letter_case",
    "make_people_letter_case",
    "sample_spec",
]
