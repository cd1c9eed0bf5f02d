"""Write the GraphQL schema's SDL to schema.graphql (`make schema`).

The committed file is what client developers and code generators read; a test
(tests/schema/test_sdl.py) fails when it drifts from the code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SDL_PATH = ROOT / "schema.graphql"


def current_sdl() -> str:
    from schema import schema

    return schema.as_str().rstrip("\n") + "\n"


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    import django

    django.setup()
    SDL_PATH.write_text(current_sdl())
    print(f"wrote {SDL_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
