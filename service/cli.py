"""``papersearch``: build an index, serve it, and query it from the shell.

Every failure a user can cause (bad path, bad number, missing index) ends in one
``papersearch: error: …`` line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TypeVar

import uvicorn
from pydantic import BaseModel, ValidationError

from indexing.build import BuildError, build_index
from indexing.corpus import CorpusError
from indexing.store import IndexUnusable
from models import ModelUnavailable, load_embedder
from service.app import create_app
from service.errors import ServiceError, TitleNotFound, describe_validation_errors
from service.formatting import format_hits, paper_byline, paper_heading
from service.schemas import MAX_K, SearchRequest, TitleLookup
from service.search import SearchEngine, check_index
from service.settings import Settings

DEFAULT_CORPUS = Path("seeds")
ModelT = TypeVar("ModelT", bound=BaseModel)


class UsageError(Exception):
    """A bad argument value: reported like argparse's own errors (exit status 2)."""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date like 2026-06-30, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="papersearch", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="parse a corpus, embed it and write the index")
    index.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help=f"files or folders: site pages, arXiv listings, JSONL, arXiv metadata "
        f"(.gz too), BEIR folders (default: {DEFAULT_CORPUS}/)",
    )
    index.add_argument(
        "--out", type=Path, help="index folder (default: PAPERSEARCH_INDEX_DIR or data/index)"
    )
    index.add_argument("--cache-dir", type=Path, help="embedding cache (default: data/cache)")
    index.add_argument(
        "--capture-date",
        type=_date,
        help="day the site pages were captured: resolves dates shown without a year",
    )
    index.add_argument("--quiet", action="store_true", help="no progress bar")

    serve = commands.add_parser("serve", help="serve the HTTP API (OpenAPI docs at /docs)")
    serve.add_argument("--index", type=Path, help="index folder")
    serve.add_argument("--host", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: 8000)")

    search = commands.add_parser("search", help="semantic search from the shell")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=10, help="number of results (1-100, default 10)")
    search.add_argument("--offset", type=int, default=0, help="results to skip")
    search.add_argument("--index", type=Path, help="index folder")
    search.add_argument("--json", action="store_true", help="print the API's JSON")

    similar = commands.add_parser("similar", help="papers similar to one given by title or id")
    which = similar.add_mutually_exclusive_group(required=True)
    which.add_argument("--title", help="the paper's title as you remember it")
    which.add_argument("--id", dest="paper_id", help="the paper's id")
    similar.add_argument("-k", type=int, default=10, help="number of results (1-100, default 10)")
    similar.add_argument("--index", type=Path, help="index folder")
    similar.add_argument("--json", action="store_true", help="print the API's JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
        return COMMANDS[args.command](args, settings)
    except UsageError as exc:
        parser.exit(2, f"papersearch: error: {exc}\n")
    except (IndexUnusable, ModelUnavailable, BuildError, CorpusError, ServiceError, OSError) as exc:
        print(f"papersearch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("papersearch: interrupted; the previous index, if any, is unchanged", file=sys.stderr)
        return 130


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "index_dir": getattr(args, "out", None) or getattr(args, "index", None),
        "cache_dir": getattr(args, "cache_dir", None),
        "capture_date": getattr(args, "capture_date", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        raise UsageError(describe_validation_errors(exc.errors())) from None


def _validated(model: type[ModelT], **values: object) -> ModelT:
    try:
        return model(**values)
    except ValidationError as exc:
        raise UsageError(describe_validation_errors(exc.errors())) from None


def _index(args: argparse.Namespace, settings: Settings) -> int:
    paths = args.paths or [DEFAULT_CORPUS]
    report = build_index(
        paths,
        settings.index_dir,
        cache_dir=settings.cache_dir,
        model_name=settings.model,
        load_model=load_embedder,
        capture_date=settings.capture_date,
        batch_size=settings.batch_size,
        progress=not args.quiet,
    )
    for issue in report.issues:
        print(f"skipped {issue}", file=sys.stderr)
    print(report.summary())
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    check_index(settings.index_dir, settings.model)  # fail in milliseconds, with a hint
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
    return 0


def _search(args: argparse.Namespace, settings: Settings) -> int:
    request = _validated(SearchRequest, q=args.query, k=args.k, offset=args.offset)
    engine = SearchEngine.load(settings)
    response = engine.search(request.q, request.k, request.offset)
    if args.json:
        print(response.model_dump_json(indent=2))
    else:
        print(format_hits(response.results, first_rank=request.offset + 1))
    return 0


def _similar(args: argparse.Namespace, settings: Settings) -> int:
    # Arguments are checked before the index and model load: a typo costs no waiting.
    if args.title is not None:
        lookup = _validated(TitleLookup, title=args.title, k=args.k)
    elif not 1 <= args.k <= MAX_K:
        raise UsageError(f"k: must be between 1 and {MAX_K}")
    engine = SearchEngine.load(settings)
    if args.title is not None:
        try:
            response = engine.similar_to_title(lookup.title, lookup.k)
        except TitleNotFound as exc:
            suggestions = exc.extra["suggestions"]
            lines = [str(exc)] + [f"  did you mean: {s['title']} ({s['id']})" for s in suggestions]
            raise ServiceError("\n".join(lines)) from None
        anchor, anchor_note = response.matched, f"matched {response.matched.match_score:.0f}/100"
    else:
        response = engine.similar_to_paper(args.paper_id, args.k)
        anchor, anchor_note = response.paper, "by id"
    if args.json:
        print(response.model_dump_json(indent=2))
    else:
        print(f"papers similar to: {paper_heading(anchor)} ({anchor_note})")
        print(f"{'':>12}{paper_byline(anchor)}")
        print(format_hits(response.results))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "index": _index,
    "serve": _serve,
    "search": _search,
    "similar": _similar,
}

if __name__ == "__main__":
    sys.exit(main())
