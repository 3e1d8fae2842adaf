"""The README's proof tables name tests; each named test must exist (rows stay backed)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = re.compile(r"^## Proof: .*?(?=^## )", re.M | re.S)
NAMED = re.compile(r"`(?:(tests/\w+\.py)(?:::(\w+))?|(test_\w+))(?:\[[^\]]*\])?`")
ELSEWHERE = re.compile(r"`…::(test_\w+)")


def _defined(test_file: Path) -> set[str]:
    return set(re.findall(r"^(?:async )?def (test_\w+)", test_file.read_text(), re.M))


def test_every_test_the_proof_tables_name_exists():
    proof = SECTION.search((ROOT / "README.md").read_text())
    assert proof is not None, "the README has no proof section"
    every = set().union(*(_defined(f) for f in (ROOT / "tests").glob("test_*.py")))
    matrix = _defined(ROOT / "tests" / "test_fault_matrix.py")
    named, missing = 0, []
    for file, name, bare in NAMED.findall(proof.group(0)):
        named += 1
        if file and not (ROOT / file).is_file():
            missing.append(file)
        elif name and name not in _defined(ROOT / file):
            missing.append(f"{file}::{name}")
        elif bare and bare not in matrix:  # a bare name is a row of the fault matrix
            missing.append(bare)
    for name in ELSEWHERE.findall(proof.group(0)):
        named += 1
        if name not in every:
            missing.append(name)
    assert named > 40, named
    assert missing == []
