"""docs/training.md: every table of measured figures names the CPU it was measured on (its cpu family from
/proc/cpuinfo), in the text between the previous table or heading and the table."""
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "training.md"


def _measured_tables(text: str) -> list[tuple[str, str]]:
    """(the text before the table since the last table or heading, the table's header row) for each table in the
    '## Measured' section and its subsections."""
    section = text[text.index("\n## Measured\n"):]
    following = re.search(r"\n## (?!#)", section[1:])
    section = section[: following.start() + 1] if following else section
    found, before = [], []
    lines = section.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and not lines[i - 1].startswith("|"):
            found.append(("\n".join(before), line))
            before = []
        elif line.startswith("#"):
            before = [line]
        elif not line.startswith("|"):
            before.append(line)
    return found


def test_every_table_of_figures_names_its_cpu():
    tables = _measured_tables(DOC.read_text())
    assert len(tables) >= 3
    for before, header in tables:
        assert re.search(r"cpu\s+family\s+\d+", before), f"no 'cpu family N' before the table {header!r}:\n{before}"
