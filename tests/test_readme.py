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


DEFAULT_FILE = re.compile(r"tests are in\s+`(tests/\w+\.py)`")


def test_every_test_the_proof_tables_name_exists():
    proof = SECTION.search((ROOT / "README.md").read_text())
    assert proof is not None, "the README has no proof section"
    every = set().union(*(_defined(f) for f in (ROOT / "tests").glob("test_*.py")))
    named, missing = 0, []
    default = "tests/test_fault_matrix.py"  # as the section says first
    for part in re.split(r"^### ", proof.group(0), flags=re.M):
        said = DEFAULT_FILE.search(part)  # a subsection may name its own file for bare names
        home = _defined(ROOT / (said.group(1) if said else default))
        for file, name, bare in NAMED.findall(part):
            named += 1
            if file and not (ROOT / file).is_file():
                missing.append(file)
            elif name and name not in _defined(ROOT / file):
                missing.append(f"{file}::{name}")
            elif bare and bare not in home:
                missing.append(bare)
        for name in ELSEWHERE.findall(part):
            named += 1
            if name not in every:
                missing.append(name)
    assert named > 40, named
    assert missing == []
