"""Write monitor/data/matcher.json: what the jurisdiction matcher derives from the
packaged catalog, computed ahead (`monitor.jurisdictions.derive`), so a process that
meets a changed page does not spend about 0.2 s on it.

`scripts/build_jurisdictions.py` runs it after writing the catalog; run it by hand
after editing the catalog otherwise, or to derive the word classes under another
Unicode version (Python release). A stale file is never wrong, only unused: it names
the catalog it was made from, and the matcher computes what it needs when that is
not the packaged one (a test says so).

    .venv/bin/python scripts/derive_matcher.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor import jurisdictions

OUTPUT = Path(jurisdictions.__file__).parent / jurisdictions.DERIVED


def main() -> None:
    derived = jurisdictions.derive()
    text = json.dumps(derived, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    OUTPUT.write_text(text + "\n", encoding="utf-8")
    print(f"{OUTPUT}: {len(derived['rivals'])} jurisdictions, {len(text.encode())} bytes")  # noqa: T201


if __name__ == "__main__":
    main()
