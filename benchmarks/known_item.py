"""Benchmark set: known-item search over arXiv abstracts, a judged set no ranking was tuned on.

Ranking changes are tuned on BEIR SciFact; a change that only fits SciFact would still look
good there. This writes a second set from any corpus (the 75k arXiv abstracts): a sample of
papers, each paper's first abstract sentence as a query, and that paper as its one relevant
result. A reader who remembers how a paper opens and wants it back is a real use, and the
judgments need no annotator, so the set can be as large as the corpus allows.

Titles are not used as queries: the service's "named paper first" rule (``service/titles.py``)
puts a paper whose title is the query first by design, so title queries would measure that
rule, not the ranking under test.

The set is scored like any BEIR set, by ``papersearch eval`` (the service's search code):

    python benchmarks/known_item.py --corpus ../shared/data/arxiv/arxiv-75k.jsonl.gz \
        --out data/known-item/arxiv-75k --count 1000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from files import write_atomically

from indexing.corpus import read_corpus
from indexing.errors import PapersearchError
from indexing.records import Paper
from indexing.sentences import sentence_spans
from service.settings import SEED_CAPTURE_DATE

QUERIES_FILE = "queries.jsonl"
QRELS_FILE = "qrels.tsv"
QRELS_HEADER = "query-id\tcorpus-id\tscore"
MIN_QUERY_WORDS = 5


class KnownItemError(PapersearchError, ValueError):
    """The corpus has too few papers that make a usable query, or the count is not positive."""

    status = 422
    code = "known_item_invalid"


@dataclass(frozen=True)
class KnownItemSet:
    queries: Path
    qrels: Path
    count: int


def first_sentence_query(paper: Paper) -> str | None:
    """The abstract's first sentence, or None where it would not make a fair query.

    A first sentence under ``MIN_QUERY_WORDS`` words ("We study X.") names a topic that many
    papers share, not a paper, so the one judged paper could not be told apart. A one-sentence
    abstract would make the query the whole abstract, an exact copy of the indexed text, which
    any ranking finds and so measures nothing.
    """
    spans = sentence_spans(paper.abstract)
    if len(spans) < 2:
        return None
    start, end = spans[0]
    query = paper.abstract[start:end]
    return query if len(query.split()) >= MIN_QUERY_WORDS else None


def write_known_item_set(
    corpus: Path, folder: Path, *, count: int = 1000, seed: int = 0
) -> KnownItemSet:
    """Sample ``count`` papers of ``corpus`` with ``seed`` and write their queries and qrels.

    The corpus is read by the indexer's own parser, so the judged ids are the ids the index
    gives the papers. Papers are drawn in a shuffled order of their sorted ids, so a seed
    picks the same papers whatever order the files list them in; a paper that makes no fair
    query is passed over for the next one drawn.
    """
    if count < 1:
        raise KnownItemError(f"count must be at least 1, not {count}")
    papers = {paper.id: paper for paper in read_corpus([corpus], SEED_CAPTURE_DATE).papers}
    order = sorted(papers)
    random.Random(seed).shuffle(order)
    chosen: dict[str, str] = {}
    for paper_id in order:
        query = first_sentence_query(papers[paper_id])
        if query is not None:
            chosen[paper_id] = query
            if len(chosen) == count:
                break
    if len(chosen) < count:
        raise KnownItemError(
            f"{corpus}: only {len(chosen)} of {len(papers)} papers make a query "
            f"(an abstract of two or more sentences opening with {MIN_QUERY_WORDS}+ words); "
            f"ask for at most {len(chosen)}"
        )
    ids = sorted(chosen)
    folder.mkdir(parents=True, exist_ok=True)
    # Each file whole or not at all: a half-written set would score a run on the queries it kept.
    queries = write_atomically(
        folder / QUERIES_FILE,
        _lines(json.dumps({"_id": i, "text": chosen[i]}, ensure_ascii=False) for i in ids),
    )
    qrels = write_atomically(
        folder / QRELS_FILE, _lines([QRELS_HEADER, *(f"{i}\t{i}\t1" for i in ids)])
    )
    return KnownItemSet(queries=queries, qrels=qrels, count=len(ids))


def _lines(lines: Iterable[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="corpus file or folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for queries and qrels")
    parser.add_argument("--count", type=int, default=1000, help="queries to write")
    parser.add_argument("--seed", type=int, default=0, help="sample seed")
    args = parser.parse_args()
    try:
        written = write_known_item_set(args.corpus, args.out, count=args.count, seed=args.seed)
    except (PapersearchError, OSError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(
        f"{written.count} known-item queries (first sentence, seed {args.seed}) from "
        f"{args.corpus}: {written.queries}, {written.qrels}"
    )
    print(
        f"papersearch eval --corpus {args.corpus} --queries {written.queries} "
        f"--qrels {written.qrels}"
    )


if __name__ == "__main__":
    main()
