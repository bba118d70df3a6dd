"""A README as the script a learner follows: which blocks run, how, and what is reported."""

from __future__ import annotations

import subprocess
from pathlib import Path

from labctl.authoring.follow import blocks, failed_commands, script

README = """# A lab

```bash
mkdir work && cd work
```

Expected output, not run:

```
work
```

<!-- follow: background -->
```bash
sleep 30
```

```python
print("shown, not run")
```

<!-- follow: write hello.txt -->
```text
hello from the README
```

<!-- follow: skip -->
```bash
exit 1
```

<!-- follow: skip -->

A paragraph in between: the directive above binds to nothing.

```sh
cat hello.txt
false
echo after
```
"""


def test_blocks_carry_the_directive_written_just_before_them() -> None:
    found = [(b.info, b.directive, b.argument) for b in blocks(README)]
    assert found == [
        ("bash", "", ""),
        ("", "", ""),
        ("bash", "background", ""),
        ("python", "", ""),
        ("text", "write", "hello.txt"),
        ("bash", "skip", ""),
        ("sh", "", ""),
    ]


def test_following_runs_shell_blocks_in_one_shell_and_reports_failures(tmp_path: Path) -> None:
    text = script(README)
    assert text is not None and "exit 1" not in text and "shown, not run" not in text
    proc = subprocess.run(["bash", "-c", text], cwd=tmp_path, capture_output=True, text=True, timeout=20)
    assert proc.stdout.splitlines() == ["hello from the README", "after"]  # cd carried over; it went on
    assert failed_commands(proc.stderr) == ["false"]
    assert (tmp_path / "work" / "hello.txt").read_text() == "hello from the README\n"


def test_a_readme_without_shell_blocks_has_nothing_to_follow() -> None:
    assert script("# Nothing\n\n```python\nx = 1\n```\n") is None
