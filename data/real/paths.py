"""Where the real data sets live: ``<repo>/../shared/data`` unless a path is given."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"


def resolve(path: str | Path | None, *default_parts: str) -> Path:
    """``path`` itself, or ``DEFAULT_DATA_ROOT/<default_parts>``; ``FileNotFoundError`` naming it when absent."""
    resolved = Path(path) if path is not None else DEFAULT_DATA_ROOT.joinpath(*default_parts)
    if not resolved.exists():
        raise FileNotFoundError(
            f"{resolved}: data file not found "
            f"(real data sets are read from {DEFAULT_DATA_ROOT} by default; pass path=...)"
        )
    return resolved
