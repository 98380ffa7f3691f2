"""Every [[examples]] entry in patterns/*.toml must hold: operators' tests for their edits."""

from __future__ import annotations

import pytest

from dlp_gateway.detect.engine import DetectionEngine
from dlp_gateway.detect.patterns import PATTERN_FILES, load_patterns
from dlp_gateway.extract.units import TextUnit

PATTERNS = load_patterns()
CASES = [
    pytest.param(kind, ex.text, ex.count, id=f"{kind}:{ex.text[:24]}")
    for kind in PATTERN_FILES
    for ex in getattr(PATTERNS, kind).examples
]


@pytest.fixture(scope="module")
def engine() -> DetectionEngine:
    return DetectionEngine(PATTERNS)


def test_every_pattern_file_has_examples() -> None:
    for kind in PATTERN_FILES:
        examples = getattr(PATTERNS, kind).examples
        assert any(e.count > 0 for e in examples), f"{kind}.toml needs a matching example"
        assert any(e.count == 0 for e in examples), f"{kind}.toml needs a non-matching example"


@pytest.mark.parametrize(("kind", "text", "count"), CASES)
def test_example(engine: DetectionEngine, kind: str, text: str, count: int) -> None:
    findings = engine.scan_text(TextUnit(text, "body", "body", in_body=True))
    found = [f for f in findings if f.type == kind]
    assert len(found) == count, [(f.type, f.masked) for f in findings]
