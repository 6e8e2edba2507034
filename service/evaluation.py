"""Measuring rankings on a BEIR-format test set (queries + relevance judgments).

The run goes through ``SearchEngine.search``, the code the API serves, so a number measured
here is a number users get; the metrics come from ir-measures (pytrec_eval underneath).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import ir_measures
from ir_measures import RR, R, nDCG

from indexing.errors import PapersearchError
from indexing.parsers.jsonl import UNREADABLE, describe_unreadable, open_bytes
from service.ranking import SearchMode
from service.schemas import MAX_K, SearchRequest
from service.search import SearchEngine

# Reported name -> ir-measures measure. Recall@100 needs the top 100, the most a search returns.
MEASURES = {"nDCG@10": nDCG @ 10, "Recall@100": R @ 100, "MRR@10": RR @ 10}
RUN_DEPTH = MAX_K


class EvalInputError(PapersearchError, ValueError):
    """A queries or qrels file that cannot be used; the message names the file and line."""

    status = 422
    code = "eval_input_invalid"


Qrels = dict[str, dict[str, int]]


def read_queries(path: Path) -> dict[str, str]:
    """BEIR queries: one JSON object per line with ``_id`` and ``text``."""
    queries: dict[str, str] = {}
    try:
        with open_bytes(path) as lines:
            for number, raw in enumerate(lines, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                    query_id, text = str(obj["_id"]), obj["text"]
                except (ValueError, KeyError, TypeError):
                    text = None
                if not isinstance(text, str) or not text.strip():
                    raise EvalInputError(
                        f"{path}:{number}: expected a JSON object with _id and a non-empty text"
                    )
                queries[query_id] = text
    except UNREADABLE as exc:
        raise EvalInputError(f"{path}: {describe_unreadable(exc)}") from None
    if not queries:
        raise EvalInputError(f"{path}: no queries")
    return queries


def read_qrels(path: Path) -> Qrels:
    """BEIR qrels: tab-separated ``query-id corpus-id score`` with a header line.

    TREC's four-column form (``query-id 0 corpus-id score``, spaces) is read too.
    """
    qrels: Qrels = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
                fields = row[0].split() if len(row) == 1 else row
                if not fields or (number == 1 and fields[0] == "query-id"):
                    continue
                if len(fields) == 4:
                    fields = [fields[0], fields[2], fields[3]]
                try:
                    query_id, doc_id, relevance = fields[0], fields[1], int(fields[2])
                except (ValueError, IndexError):
                    raise EvalInputError(
                        f"{path}:{number}: expected query-id, corpus-id and an integer score"
                    ) from None
                qrels.setdefault(query_id, {})[doc_id] = relevance
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalInputError(f"{path}: {exc}") from None
    if not qrels:
        raise EvalInputError(f"{path}: no relevance judgments")
    return qrels


@dataclass
class EvalReport:
    metrics: dict[str, float]
    queries: int
    papers: int
    settings: dict[str, object]
    seconds: float
    skipped_queries: list[str] = field(default_factory=list)

    def table(self) -> str:
        """A fixed-width table for the terminal."""
        lines = [f"{self.queries} queries over {self.papers} papers in {self.seconds:.1f} s"]
        lines += [f"  {name:<11} {value:.4f}" for name, value in self.metrics.items()]
        if self.skipped_queries:
            lines.append(f"  ({len(self.skipped_queries)} judged queries have no text: skipped)")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


def score_run(
    run: dict[str, dict[str, float]], qrels: Qrels, judged: list[str]
) -> dict[str, float]:
    """The mean of each measure over ``judged`` queries, 4 decimals.

    A judged query that found nothing counts as 0, as in ``trec_eval -c`` (pytrec_eval on its
    own would leave it out and flatter the mean).
    """
    totals = dict.fromkeys(MEASURES.values(), 0.0)
    for result in ir_measures.iter_calc(list(MEASURES.values()), qrels, run):
        totals[result.measure] += result.value
    return {
        name: round(totals[m] / len(judged), 4) if judged else 0.0 for name, m in MEASURES.items()
    }


def evaluate(
    engine: SearchEngine,
    queries: dict[str, str],
    qrels: Qrels,
    search_options: Mapping[str, object] | None = None,
) -> EvalReport:
    """Rank every judged query (with ``search_options``: mode, filters) and score the top 100."""
    options = dict(search_options or {})
    started = time.perf_counter()
    judged = [query_id for query_id in qrels if query_id in queries]
    run: dict[str, dict[str, float]] = {}
    for query_id in judged:
        request = SearchRequest.model_validate(
            {"q": queries[query_id], "k": RUN_DEPTH, "highlight": False, **options}
        )
        response = engine.search(request)
        # Scores from ranks: the evaluated order is exactly the order the API returns.
        run[query_id] = {
            hit.id: float(RUN_DEPTH - rank) for rank, hit in enumerate(response.results)
        }
    mode = SearchMode(str(options.pop("mode", None) or engine.default_mode))
    return EvalReport(
        metrics=score_run(run, qrels, judged),
        queries=len(judged),
        papers=len(engine.index),
        settings={
            "model": engine.embedder.name,
            "mode": mode.value,
            "fusion": engine.fusion.method.value,
            "dense_weight": engine.fusion.dense_weight,
            "rrf_k": engine.fusion.rrf_k,
            "filters": options,
        },
        seconds=round(time.perf_counter() - started, 2),
        skipped_queries=sorted(set(qrels) - set(queries)),
    )
