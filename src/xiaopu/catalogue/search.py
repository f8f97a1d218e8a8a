"""Search terms that work for Chinese and English without database extensions.

Chinese has no spaces, so a title is indexed by its CJK characters and every pair of neighbours
(unigrams and bigrams) plus its Latin words; a query matches when all of its bigrams (or its one
character) and word prefixes are present. The terms feed a `simple` tsvector with a GIN index.
"""

from __future__ import annotations

import re

_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[0-9a-z]+")


def _is_cjk(run: str) -> bool:
    return not run[0].isascii()


def index_terms(*texts: str | None) -> str:
    terms: list[str] = []
    for text in texts:
        for run in _RUNS.findall((text or "").lower()):
            if _is_cjk(run):
                terms.extend(run)
                terms.extend(run[i : i + 2] for i in range(len(run) - 1))
            else:
                terms.append(run)
    return " ".join(dict.fromkeys(terms))


def query_expression(query: str) -> str | None:
    """A to_tsquery('simple', ...) expression, or None when the query has no searchable term."""
    parts: list[str] = []
    for run in _RUNS.findall(query.lower()):
        if _is_cjk(run):
            parts.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        else:
            parts.append(f"{run}:*")
    return " & ".join(dict.fromkeys(parts)) or None
