"""``papersearch``: build an index, serve it, and query it from the shell.

Every failure a user can cause (bad path, bad number, missing index) ends in one
``papersearch: error: …`` line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, get_args

from pydantic import BaseModel, SecretStr, ValidationError

from indexing.errors import PapersearchError
from indexing.index_types import IndexType
from models import BACKENDS, DEFAULT_BACKEND
from service.export import ExportFormat
from service.filters import SearchFilters
from service.ranking import Fusion, SearchMode, SortOrder
from service.schemas import MAX_K, MAX_OFFSET, SearchRequest
from service.settings import MAX_DEFAULT_WORKERS, Settings

# Each command imports what it needs in its own function: the full stack (the model runtime,
# FastAPI, BM25, metrics) takes most of a second, and `serve`'s supervisor, `remove` or a
# refused argument need little of it.
if TYPE_CHECKING:
    from fastapi import FastAPI

    from indexing.build import BuildReport
    from indexing.update import UpdateReport
    from service.schemas import CitedPaper, SimilarPage

DEFAULT_CORPUS = Path("seeds")
ModelT = TypeVar("ModelT", bound=BaseModel)

# The commands' Ray settings beside the address (--ray ADDRESS), by Settings field, each
# with its flag's metavar. They mean something on a cluster only: given without an address,
# the command refuses them rather than ignore them.
RAY_ADDRESS_FLAG = "--ray"
RAY_INDEX_FIELDS = {"ray_embed_workers": "N", "ray_gpus_per_worker": "G"}
RAY_SERVE_FIELDS = {
    "replicas": "N",
    "max_replicas": "N",
    "target_ongoing_requests": "R",
    "replica_cpus": "C",
    "shards": "S",
}


class UsageError(PapersearchError):
    """A bad argument value: reported like argparse's own errors (exit status 2)."""

    status = 422
    code = "invalid_request"


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
        f"(.gz too), BEIR folders, BibTeX (.bib) and CSL-JSON (a Zotero or Mendeley export) "
        f"(default: {DEFAULT_CORPUS}/)",
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
    index.add_argument(
        "--model", help="embedding model or preset: fast (default), quality (all-mpnet-base-v2)"
    )
    _add_backend_option(index, building=True)
    index.add_argument(
        "--index-type",
        choices=[t.value for t in IndexType],
        help="dense index structure (default: auto, exact below 100,000 papers)",
    )
    _add_vector_options(index)
    index.add_argument(
        "--force", action="store_true", help="rebuild even if the index is already current"
    )
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_ray_options(index, RAY_INDEX_FIELDS)

    add = commands.add_parser(
        "add", help="add papers to an index (a paper with an id already there replaces it)"
    )
    add.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="corpus files or folders")
    add.add_argument("--index", type=Path, help="index folder")
    add.add_argument("--cache-dir", type=Path, help="embedding cache (default: data/cache)")
    add.add_argument("--capture-date", type=_date, help="as for `papersearch index`")
    _add_vector_options(add)
    add.add_argument("--quiet", action="store_true", help="no progress bar")

    export_vectors = commands.add_parser(
        "export-vectors",
        help="write an index's vectors to a Parquet file (what `index --vectors` reads)",
    )
    export_vectors.add_argument("--index", type=Path, help="index folder")
    export_vectors.add_argument(
        "--out", type=Path, required=True, metavar="FILE.parquet", help="file to write"
    )

    remove = commands.add_parser(
        "remove",
        help="remove papers from an index by id",
        description="Remove papers from an index by id. As with rm, the ids the index holds are "
        "removed even when others are not in it; those are named on stderr and the exit status "
        "is 1.",
    )
    remove.add_argument("paper_ids", nargs="+", metavar="ID", help="ids of the papers to remove")
    remove.add_argument("--index", type=Path, help="index folder")

    merge = commands.add_parser(
        "merge",
        help="merge an index's segments into one",
        description="Merge every segment of an index into one, dropping removed papers. add and "
        "remove merge on their own past a threshold; this merges now (before copying an index "
        "away, or after many updates).",
    )
    merge.add_argument("--index", type=Path, help="index folder")

    shard = commands.add_parser(
        "shard",
        help="cut an index into shards for `serve --ray --shards` (done by serve when missing)",
        description="Cut an index into S shards of contiguous rows, each an index of its own "
        "beside it (INDEX-shards/S/shard-000 ...), from its stored vectors and records: "
        "nothing is embedded again. `serve --ray --shards S` deploys one per shard.",
    )
    shard.add_argument("--index", type=Path, help="index folder")
    shard.add_argument(
        "--shards",
        type=int,
        metavar="S",
        help=f"how many shards ({_env_default('shards')})",
    )

    serve = commands.add_parser("serve", help="serve the HTTP API (OpenAPI docs at /docs)")
    serve.add_argument("--index", type=Path, help=f"index folder ({_env_default('index_dir')})")
    serve.add_argument("--host", help=f"address to bind ({_env_default('host')})")
    serve.add_argument("--port", type=int, help=f"port ({_env_default('port')})")
    serve.add_argument(
        "--workers",
        type=int,
        help="processes serving the port, each loading the model (default: "
        f"PAPERSEARCH_WORKERS, else one per core, at most {MAX_DEFAULT_WORKERS})",
    )
    _add_backend_option(serve, building=False)
    _add_ray_options(serve, RAY_SERVE_FIELDS)

    search = commands.add_parser("search", help="search from the shell")
    search.add_argument("query")
    _add_page_options(search)
    _add_search_options(search)
    _add_order_options(search)
    search.add_argument("--index", type=Path, help="index folder")
    _add_backend_option(search, building=False)
    search.add_argument("--json", action="store_true", help="print the API's JSON")

    similar = commands.add_parser(
        "similar", help="papers similar to one given by title, arXiv id or id, or to a text"
    )
    which = similar.add_mutually_exclusive_group(required=True)
    which.add_argument("--title", help="the paper's title as you remember it, or its arXiv id")
    which.add_argument("--id", dest="paper_id", help="the paper's id")
    which.add_argument(
        "--text-file",
        type=Path,
        help="a text (an abstract, an introduction) to find papers like; - reads stdin",
    )
    _add_page_options(similar)
    _add_search_options(similar, mode=False)
    similar.add_argument("--index", type=Path, help="index folder")
    _add_backend_option(similar, building=False)
    similar.add_argument("--json", action="store_true", help="print the API's JSON")

    recommend = commands.add_parser(
        "recommend", help="papers like a set of example ids, and unlike others"
    )
    recommend.add_argument("positive", nargs="+", metavar="ID", help="papers to find more like")
    recommend.add_argument(
        "--unlike",
        dest="negative",
        action="append",
        default=[],
        metavar="ID",
        help="a paper the results should be unlike (repeat for several)",
    )
    _add_page_options(recommend)
    _add_search_options(recommend, mode=False)
    recommend.add_argument("--index", type=Path, help="index folder")
    _add_backend_option(recommend, building=False)
    recommend.add_argument("--json", action="store_true", help="print the API's JSON")
    export = commands.add_parser(
        "export",
        help="papers by id, or a page of search results, as BibTeX, RIS or CSL-JSON",
    )
    export.add_argument("paper_ids", nargs="*", metavar="ID", help="ids of the papers to export")
    export.add_argument("--query", help="export this search's results instead (its page: -k)")
    _add_page_options(export)
    _add_search_options(export)
    _add_order_options(export)
    export.add_argument(
        "--format",
        choices=[f.value for f in ExportFormat],
        default=ExportFormat.BIBTEX.value,
        help="file format",
    )
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")
    export.add_argument("--index", type=Path, help="index folder")
    _add_backend_option(export, building=False)
    mcp = commands.add_parser("mcp", help="serve the search as MCP tools over stdio")
    mcp.add_argument("--index", type=Path, help="index folder")
    _add_backend_option(mcp, building=False)

    prepare = commands.add_parser(
        "prepare",
        help="make the model's files for a backend now rather than on first use (the ONNX "
        "int8 export; `make install` runs this)",
    )
    prepare.add_argument("--model", help="embedding model or preset (default: fast)")
    _add_backend_option(prepare, building=True)

    evaluate = commands.add_parser(
        "eval", help="measure rankings on a BEIR-format set (nDCG@10, Recall@100, MRR@10)"
    )
    evaluate.add_argument("--corpus", type=Path, required=True, help="BEIR folder or corpus file")
    evaluate.add_argument("--queries", type=Path, required=True, help="queries JSONL (_id, text)")
    evaluate.add_argument("--qrels", type=Path, required=True, help="qrels TSV (BEIR or TREC)")
    _add_search_options(evaluate)
    evaluate.add_argument("--fusion", choices=[f.value for f in Fusion], help="hybrid fusion")
    evaluate.add_argument(
        "--ranker", type=Path, help="model of --fusion learned (default: the one shipped)"
    )
    evaluate.add_argument("--dense-weight", type=float, help="dense weight of the blend (0-1)")
    evaluate.add_argument("--model", help="embedding model or preset (fast, quality)")
    _add_backend_option(evaluate, building=True)
    evaluate.add_argument(
        "--index",
        type=Path,
        help="where the corpus's index is kept (default: data/eval/<corpus name>); it is "
        "rebuilt only when the corpus or model changes",
    )
    evaluate.add_argument("--cache-dir", type=Path, help="embedding cache (default: data/cache)")
    evaluate.add_argument("--out", type=Path, help="also write the results as JSON here")
    return parser


def _add_vector_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vectors",
        type=Path,
        metavar="FILE.parquet",
        help="precomputed vectors (columns id, vector; see `export-vectors`): papers with one "
        "are not embedded",
    )
    parser.add_argument(
        "--vectors-model",
        metavar="MODEL",
        help="the model that made --vectors, for a file whose metadata does not say",
    )
    parser.add_argument(
        "--vectors-backend",
        choices=list(BACKENDS),
        help="the backend that made --vectors, for a file whose metadata does not say",
    )


def _env_default(field: str) -> str:
    """A flag's default as help text: the environment's where it sets one (Settings reads
    ``PAPERSEARCH_*``), else the field's own, where it has one."""
    default = Settings.model_fields[field].default
    return f"default: {_env(field)}" + ("" if default is None else f", else {default}")


def _env(field: str) -> str:
    """The environment variable that sets a Settings field."""
    return f"PAPERSEARCH_{field.upper()}"


def _flag(field: str) -> str:
    """The flag that sets a Settings field: its name in dashes (the address's is --ray)."""
    return RAY_ADDRESS_FLAG if field == "ray_address" else "--" + field.replace("_", "-")


def _add_ray_options(parser: argparse.ArgumentParser, fields: dict[str, str]) -> None:
    """``--ray ADDRESS`` and a flag for each of the command's Ray settings ``fields`` (to
    their metavars), each named, typed and described as its Settings field: the flag and
    its PAPERSEARCH_* variable cannot drift apart."""
    for field, metavar in {"ray_address": "ADDRESS", **fields}.items():
        setting = Settings.model_fields[field]
        # The field's type, its None aside (unset is the flag left out).
        kinds = get_args(setting.annotation) or (setting.annotation,)
        parser.add_argument(
            _flag(field),
            dest=field,
            type=next(kind for kind in (int, float, str) if kind in kinds),
            metavar=metavar,
            help=f"{setting.description} ({_env_default(field)})",
        )


def _add_backend_option(parser: argparse.ArgumentParser, *, building: bool) -> None:
    default = DEFAULT_BACKEND if building else "the one the index was built with"
    parser.add_argument(
        "--backend", choices=list(BACKENDS), help=f"how the model runs (default: {default})"
    )


def _add_order_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sort", choices=[s.value for s in SortOrder], default="relevance", help="result order"
    )
    parser.add_argument(
        "--recency",
        type=int,
        metavar="DAYS",
        help=SearchRequest.model_fields["recency"].description,
    )


def _add_page_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-k", type=int, default=10, help=f"number of results (1-{MAX_K}, default 10)"
    )
    parser.add_argument(
        "--offset", type=int, default=0, help=f"results to skip (at most {MAX_OFFSET})"
    )


def _add_search_options(parser: argparse.ArgumentParser, *, mode: bool = True) -> None:
    """``--mode`` and one option per search filter, named, typed and described as the
    filter's field (a yes/no filter ``has_x`` gets ``--has-x`` and ``--no-x``)."""
    if mode:
        parser.add_argument("--mode", choices=[m.value for m in SearchMode], help="ranking mode")
    for name, field in SearchFilters.model_fields.items():
        flag, help_text = "--" + name.replace("_", "-"), field.description
        if bool in getattr(field.annotation, "__args__", ()):
            pair = parser.add_mutually_exclusive_group()
            pair.add_argument(
                flag, dest=name, action="store_const", const=True, help=f"{help_text} Sets true."
            )
            negative = "--no-" + name.removeprefix("has_").replace("_", "-")
            pair.add_argument(
                negative, dest=name, action="store_const", const=False, help=f"Sets {flag} false."
            )
        else:
            kind = int if int in getattr(field.annotation, "__args__", ()) else str
            parser.add_argument(flag, dest=name, type=kind, help=help_text)


def search_values(args: argparse.Namespace) -> dict[str, object]:
    """The mode and filter options given on the command line, as SearchRequest fields."""
    names = ("mode", *SearchFilters.model_fields)
    return {name: value for name in names if (value := getattr(args, name, None)) is not None}


def _search_fields(args: argparse.Namespace) -> dict[str, object]:
    """A search's page, order, mode and filters as the command line gave them (for
    ``search`` and ``export --query``, which run the same search)."""
    order = {"sort": args.sort, "recency": args.recency}
    return {"k": args.k, "offset": args.offset, **order, **search_values(args)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = _settings(args)
        return COMMANDS[args.command](args, settings)
    except UsageError as exc:
        parser.exit(2, f"papersearch: error: {exc}\n")
    except Exception as exc:
        if not isinstance(exc, _user_errors()):
            raise
        print(f"papersearch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("papersearch: interrupted; the previous index, if any, is unchanged", file=sys.stderr)
        return 130


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors whose message says what to do: printed as one line, not a traceback.
    The project's own share one base; the models package, which imports nothing of the
    others, has its own (imported here only once one was raised)."""
    from models import ModelUnavailable

    return (PapersearchError, ModelUnavailable, OSError)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "index_dir": getattr(args, "index", None)
        or (getattr(args, "out", None) if args.command == "index" else None),
        "cache_dir": getattr(args, "cache_dir", None),
        "model": getattr(args, "model", None),
        "fusion": getattr(args, "fusion", None),
        "ranker": getattr(args, "ranker", None),
        "dense_weight": getattr(args, "dense_weight", None),
        "capture_date": getattr(args, "capture_date", None),
        "backend": getattr(args, "backend", None),
        "index_type": getattr(args, "index_type", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "workers": getattr(args, "workers", None),
        "shards": getattr(args, "shards", None),
        "replicas": getattr(args, "replicas", None),
        "max_replicas": getattr(args, "max_replicas", None),
        "target_ongoing_requests": getattr(args, "target_ongoing_requests", None),
        "replica_cpus": getattr(args, "replica_cpus", None),
        "ray_address": getattr(args, "ray_address", None),
        "ray_embed_workers": getattr(args, "ray_embed_workers", None),
        "ray_gpus_per_worker": getattr(args, "ray_gpus_per_worker", None),
    }
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        raise UsageError(_described(exc)) from None


def _validated(model: type[ModelT], **values: object) -> ModelT:
    from service.errors import InvalidRequest, validated

    try:
        return validated(model, values)
    except InvalidRequest as exc:
        raise UsageError(exc.message) from None


def _described(error: ValidationError) -> str:
    from service.errors import describe_validation_errors

    return describe_validation_errors(error.errors())


def _build(
    paths: Sequence[Path],
    settings: Settings,
    *,
    progress: bool = True,
    skip_if_current: bool = False,
    vectors: Path | None = None,
    vectors_model: str | None = None,
    vectors_backend: str | None = None,
) -> BuildReport:
    """``build_index`` into the settings' index folder, with their cache, model, dates and
    Ray cluster (none: this process)."""
    from indexing.build import build_index
    from models import load_embedder

    ray = None
    if settings.ray_address is not None:
        from indexing.ray_job import RayJob

        ray = RayJob(
            settings.ray_address,
            embed_workers=settings.ray_embed_workers,
            gpus_per_worker=settings.ray_gpus_per_worker,
        )
    return build_index(
        paths,
        settings.index_dir,
        cache_dir=settings.cache_dir,
        model_name=settings.model,
        load_model=load_embedder,
        backend=settings.build_backend,
        index_type=settings.index_type,
        capture_date=settings.capture_date,
        batch_size=settings.batch_size,
        progress=progress,
        skip_if_current=skip_if_current,
        vectors=vectors,
        vectors_model=vectors_model,
        vectors_backend=vectors_backend,
        ray=ray,
    )


def _refuse_ray_settings_without_ray(
    args: argparse.Namespace, settings: Settings, fields: Iterable[str]
) -> None:
    """Ray settings without a cluster to apply them to are refused, not ignored: ignored,
    ``serve --shards 2`` would start one unsharded process on this machine without a word.
    A setting at its default asks for nothing, so an environment that sets it so passes."""
    if settings.ray_address is not None:
        return
    given = []
    for field in fields:
        value = getattr(settings, field)
        if value == Settings.model_fields[field].default:
            continue
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        flag_given = getattr(args, field, None) is not None
        given.append(f"{_flag(field)} {shown}" if flag_given else f"{_env(field)}={shown}")
    if given:
        settings_are = "is a Ray setting" if len(given) == 1 else "are Ray settings"
        raise UsageError(
            f"{' and '.join(given)} {settings_are}: add {RAY_ADDRESS_FLAG} ADDRESS (or set "
            f"{_env('ray_address')}) to {args.command} on a Ray cluster"
        )


def _index(args: argparse.Namespace, settings: Settings) -> int:
    _refuse_ray_settings_without_ray(args, settings, RAY_INDEX_FIELDS)
    report = _build(
        args.paths or [DEFAULT_CORPUS],
        settings,
        progress=not args.quiet,
        skip_if_current=not args.force,
        vectors=args.vectors,
        vectors_model=args.vectors_model,
        vectors_backend=args.vectors_backend,
    )
    return _print_report(report)


def _add(args: argparse.Namespace, settings: Settings) -> int:
    from indexing.update import add_files
    from models import load_embedder

    report = add_files(
        args.paths,
        settings.index_dir,
        capture_date=settings.capture_date,
        cache_dir=settings.cache_dir,
        load_model=load_embedder,
        batch_size=settings.batch_size,
        progress=not args.quiet,
        vectors=args.vectors,
        vectors_model=args.vectors_model,
        vectors_backend=args.vectors_backend,
    )
    return _print_report(report)


def _export_vectors(args: argparse.Namespace, settings: Settings) -> int:
    """The index's vectors, in row order, a chunk at a time: a million of them never sit
    in memory at once beside the memory-mapped index."""
    import numpy as np

    from indexing.manifest import checked_build
    from indexing.plural import counted
    from indexing.reader import PaperIndex
    from indexing.vector_files import CHUNK_ROWS, write_vector_chunks

    index = PaperIndex.open_checked(checked_build(settings.index_dir))
    try:
        ids, manifest = index.paper_ids(), index.manifest

        def chunks() -> Iterator[tuple[list[str], np.ndarray]]:
            for start in range(0, len(ids), CHUNK_ROWS):
                rows = np.arange(start, min(start + CHUNK_ROWS, len(ids)))
                yield ids[start : start + CHUNK_ROWS], index.vectors_at(rows)

        count = write_vector_chunks(
            args.out,
            chunks(),
            model=manifest.model,
            backend=manifest.backend,
            dimension=manifest.dimension,
        )
    finally:
        index.close()
    print(
        f"exported {counted(count, 'vector')} of {settings.index_dir} ({manifest.model}, "
        f"{manifest.backend}) to {args.out}"
    )
    return 0


def _print_report(report: BuildReport | UpdateReport) -> int:
    """Skipped entries on stderr, one summary line on stdout."""
    for issue in report.issues:
        print(f"skipped {issue}", file=sys.stderr)
    print(report.summary())
    return 0


def _remove(args: argparse.Namespace, settings: Settings) -> int:
    from indexing.update import remove_papers

    report = remove_papers(args.paper_ids, settings.index_dir)
    if not report.unknown_ids:
        print(report.summary())
        return 0
    # As rm does: what could be removed was, each id that could not is named, and the exit
    # status says not everything asked for was done (a typo must not pass for a removal).
    if report.removed:
        print(report.summary())
    outcome = "the others were removed" if report.removed else "nothing removed"
    print(
        f"papersearch: error: not in the index {settings.index_dir}: "
        f"{', '.join(report.unknown_ids)}; {outcome}",
        file=sys.stderr,
    )
    return 1


def _merge(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from indexing.manifest import read_manifest
    from indexing.plural import counted
    from indexing.update import merge_segments

    started = time.perf_counter()
    merged = merge_segments(settings.index_dir, full=True)
    papers = read_manifest(settings.index_dir).paper_count
    seconds = time.perf_counter() - started
    if merged:
        print(
            f"merged {counted(merged, 'segment')} of {settings.index_dir} into one: "
            f"{counted(papers, 'paper')}, {seconds:.1f} s"
        )
    else:
        print(f"index {settings.index_dir} is one segment already ({counted(papers, 'paper')})")
    return 0


def _shard(args: argparse.Namespace, settings: Settings) -> int:
    from indexing.shards import write_shards

    print(write_shards(settings.index_dir, settings.shards).summary())
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    _refuse_ray_settings_without_ray(args, settings, RAY_SERVE_FIELDS)
    if settings.ray_address is not None:
        from indexing.ray_job import import_ray

        import_ray()  # not installed: one line, before Ray Serve is imported
        from service.ray_serving import serve_on_ray

        return serve_on_ray(settings)
    import uvicorn

    from indexing.manifest import checked_build
    from service.http_server import HTTP_PROTOCOL
    from service.observability import MULTIPROCESS_DIR_VARIABLE, logging_config

    # Fail before the model loads, in one line with a hint: the manifest, the model, and
    # each file's checksum (a damaged file would otherwise fail the app's start-up).
    verified = checked_build(
        settings.index_dir, model=settings.model, backend=settings.backend
    ).build
    settings = settings.model_copy(update={"verified_build": verified})
    workers = settings.serving_workers
    metrics_dir = None  # a folder made here, removed when the server stops
    if workers == 1:
        # One process: the app is built here, from exactly these settings. (With several,
        # this process only supervises: the workers import the app.)
        from service.app import create_app

        app: FastAPI | str = create_app(settings)
    else:
        # uvicorn spawns each worker as a fresh interpreter that imports the factory and
        # calls it with no arguments, so it builds Settings() from the environment: the
        # flags resolved here travel to it as PAPERSEARCH_* variables, the worker count and
        # each worker's share of the cores included.
        threads = settings.worker_model_threads
        resolved = settings.model_copy(update={"workers": workers, "model_threads": threads})
        os.environ.update(settings_environment(resolved))
        # The same share for the OpenMP pools (torch's, FAISS's), unless set already.
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        # /metrics sums every worker's counts from files in one folder (prometheus_client's
        # multiprocess mode), whichever worker is scraped.
        if MULTIPROCESS_DIR_VARIABLE not in os.environ:
            metrics_dir = tempfile.mkdtemp(prefix="papersearch-metrics-")
            os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_dir
        app = "service.app:create_app"
    try:
        uvicorn.run(
            app,
            factory=workers > 1,
            host=settings.host,
            port=settings.port,
            workers=workers,
            # JSON lines with request ids; uvicorn's access log is replaced by the app's,
            # which leaves the query text out (service/observability.py).
            log_config=logging_config(),
            access_log=False,
            # The HTTP parser's own 400 in the API's JSON error shape (service/http_server.py).
            http=HTTP_PROTOCOL,
        )
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def settings_environment(settings: Settings) -> dict[str, str]:
    """``settings`` as the ``PAPERSEARCH_*`` variables that make ``Settings()`` equal to it.

    Every field is written, not only the flags, so a worker cannot differ from the process
    that checked the index (a model name resolved from a preset, say). Strings go as they
    are, everything else as JSON (what pydantic-settings reads for lists, numbers and
    booleans); unset optional fields are left out, and the API key is written in clear.
    """
    values = settings.model_dump(mode="json", exclude_none=True)
    for name, value in settings:
        if isinstance(value, SecretStr):
            values[name] = value.get_secret_value()
    return {
        f"PAPERSEARCH_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
        for name, value in values.items()
    }


def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    from service.assistant_tools import build_mcp_server
    from service.search import SearchEngine

    # stdout carries the protocol: everything else (logs, warnings) goes to stderr.
    engine = SearchEngine.load(settings)
    try:
        build_mcp_server(lambda: engine).run("stdio")
    finally:
        engine.close()
    return 0


def _search(args: argparse.Namespace, settings: Settings) -> int:
    from service.formatting import format_hits
    from service.search import SearchEngine

    request = _validated(SearchRequest, q=args.query, **_search_fields(args))
    engine = SearchEngine.load(settings)
    response = engine.search(request)
    if args.json:
        print(response.model_dump_json(indent=2))
    else:
        print(format_hits(response.results, first_rank=request.offset + 1))
        first, last = request.offset + 1, request.offset + len(response.results)
        shown = f"{first}-{last}" if response.results else "none"
        print(f"{response.mode} search: {shown} of {response.total} matching papers")
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from models import vector_space
    from service.evaluation import evaluate, read_qrels, read_queries
    from service.schemas import SearchRequest
    from service.search import SearchEngine

    values = search_values(args)
    _validated(SearchRequest, q="check", **values)  # bad options fail before any loading
    queries, qrels = read_queries(args.queries), read_qrels(args.qrels)
    if args.index is None:
        corpus_name = args.corpus.name if args.corpus.is_dir() else args.corpus.stem
        space = vector_space(settings.model, settings.build_backend)
        settings = settings.model_copy(
            update={"index_dir": Path("data/eval") / f"{corpus_name}-{space}"}
        )
    report = _build([args.corpus], settings, skip_if_current=True)
    print(report.summary(), file=sys.stderr)
    engine = SearchEngine.load(settings)
    try:
        result = evaluate(engine, queries, qrels, values)
    finally:
        engine.close()
    print(result.table())
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(result.to_json() + "\n", encoding="utf-8")
    return 0


def _prepare(args: argparse.Namespace, settings: Settings) -> int:
    from models import prepare_model

    folder = prepare_model(settings.model, settings.build_backend)
    print(f"{settings.model} ({settings.build_backend}) is ready in {folder}")
    return 0


def _similar(args: argparse.Namespace, settings: Settings) -> int:
    from service.errors import ServiceError, TitleNotFound
    from service.schemas import SimilarOptions, SimilarTextRequest, TitleLookup
    from service.search import SearchEngine

    # Arguments are checked before the index and model load: a typo costs no waiting.
    page = {"k": args.k, "offset": args.offset, **search_values(args)}
    if args.title is not None:
        lookup = _validated(TitleLookup, title=args.title, **page)
    elif args.text_file is not None:
        text = _read_text(args.text_file)
        pasted = _validated(SimilarTextRequest, text=text, **page)
    else:
        options = _validated(SimilarOptions, **page)
    engine = SearchEngine.load(settings)
    try:
        if args.title is not None:
            try:
                matched = engine.similar_to_title(lookup)
            except TitleNotFound as exc:
                lines = [str(exc)] + [
                    f"  did you mean: {s.title} ({s.id})" for s in exc.suggestions
                ]
                raise ServiceError("\n".join(lines)) from None
            score = matched.matched.match_score
            _print_page(args, matched, matched.matched, f"matched {score:.0f}/100")
        elif args.text_file is not None:
            like_text = engine.similar_to_text(pasted)
            _print_page(args, like_text, None, "key terms: " + ", ".join(like_text.key_terms))
        else:
            by_id = engine.similar_to_paper(
                args.paper_id, options.k, offset=options.offset, filters=options
            )
            _print_page(args, by_id, by_id.paper, "by id")
    finally:
        engine.close()
    return 0


def _recommend(args: argparse.Namespace, settings: Settings) -> int:
    from service.schemas import RecommendRequest
    from service.search import SearchEngine

    request = _validated(
        RecommendRequest,
        positive=args.positive,
        negative=args.negative,
        k=args.k,
        offset=args.offset,
        **search_values(args),
    )
    engine = SearchEngine.load(settings)
    try:
        response = engine.recommend(request)
    finally:
        engine.close()
    unlike = f", unlike {len(request.negative)}" if request.negative else ""
    _print_page(args, response, None, f"like {len(request.positive)} examples{unlike}")
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from service.export import ExportIds, ExportSearch, export
    from service.search import SearchEngine

    if bool(args.paper_ids) == (args.query is not None):
        raise UsageError("give paper ids or --query, one of them")
    request: ExportSearch | ExportIds
    if args.query is not None:
        request = _validated(ExportSearch, q=args.query, format=args.format, **_search_fields(args))
    else:
        request = _validated(ExportIds, ids=args.paper_ids, format=args.format)
    engine = SearchEngine.load(settings)
    try:
        if isinstance(request, ExportSearch):
            papers: list[CitedPaper] = list(engine.search(request.search_request()).results)
        else:
            papers = engine.papers(request.ids)
    finally:
        engine.close()
    content = export(papers, request.format).content
    if args.out:
        args.out.write_text(content, encoding="utf-8")
        print(f"wrote {len(papers)} papers to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(content)
    return 0


def _read_text(path: Path) -> str:
    """A text file's content, or standard input's for ``-``, as UTF-8."""
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _print_page(
    args: argparse.Namespace, response: SimilarPage, anchor: CitedPaper | None, note: str
) -> None:
    """A similar-papers answer as JSON, or as lines: what it is like, then its hits."""
    from service.formatting import format_hits, paper_byline, paper_heading

    if args.json:
        print(response.model_dump_json(indent=2))
        return
    if anchor is not None:
        print(f"papers similar to: {paper_heading(anchor)} ({note})")
        print(f"{'':>12}{paper_byline(anchor)}")
    else:
        print(f"papers similar ({note})")
    print(format_hits(response.results, first_rank=response.offset + 1))
    first, last = response.offset + 1, response.offset + len(response.results)
    shown = f"{first}-{last}" if response.results else "none"
    print(f"{shown} of {response.total} papers")


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "index": _index,
    "add": _add,
    "remove": _remove,
    "merge": _merge,
    "shard": _shard,
    "serve": _serve,
    "search": _search,
    "similar": _similar,
    "recommend": _recommend,
    "eval": _eval,
    "mcp": _mcp,
    "prepare": _prepare,
    "export": _export,
    "export-vectors": _export_vectors,
}

if __name__ == "__main__":
    sys.exit(main())
