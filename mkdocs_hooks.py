"""MkDocs hooks (mkdocs.yml `hooks:`): publish files that live outside docs/ on the site, without copying them.

- schemas/json/*.json at `schemas/json/` (the path they have in the repository), so the JSON Schemas page links to
  the raw files and `mkdocs build --strict` fails if a link points at one that does not exist;
- bench/charts/*.png at `operations/bench/charts/`, where the links of BENCHMARKS.md (written by bench/run.py,
  relative to the repository root) point from the benchmarks page that includes it.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

# (folder in the repository, file pattern, folder on the site)
PUBLISHED = [("schemas/json", "*.json", "schemas/json"), ("bench/charts", "*.png", "operations/bench/charts")]


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add each published file to the site's files, read from where it is in the repository."""
    root = Path(config.config_file_path).parent
    for folder, pattern, site_folder in PUBLISHED:
        for path in sorted((root / folder).glob(pattern)):
            files.append(File.generated(config, f"{site_folder}/{path.name}", abs_src_path=str(path)))
    return files
