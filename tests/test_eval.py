"""``papersearch eval`` on a tiny BEIR-format set built here from seed papers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexing.corpus import read_corpus
from service.evaluation import EvalInputError, read_qrels, read_queries
from service.settings import SEED_CAPTURE_DATE
from tests.conftest import SEEDS, shared_data
from tests.test_cli import run_cli


@pytest.fixture(scope="module")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 seed papers; four judged queries: three exact titles and one no word matches."""
    folder = tmp_path_factory.mktemp("beir")
    papers = read_corpus([SEEDS / "000_c81c81f2dcbdc6e0.txt"], SEED_CAPTURE_DATE).papers
    papers += read_corpus([SEEDS / "002_2d51c04c1d257480.txt"], SEED_CAPTURE_DATE).papers[:5]
    assert all(paper.title for paper in papers)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as corpus:
        for number, paper in enumerate(papers):
            record = {"_id": f"d{number}", "title": paper.title, "text": paper.abstract}
            corpus.write(json.dumps(record) + "\n")
    queries = [
        {"_id": "q1", "text": papers[0].title},
        {"_id": "q2", "text": papers[3].title},
        {"_id": "q3", "text": papers[8].title},
        {"_id": "q4", "text": "zzyzx quetzalcoatl"},
        {"_id": "unjudged", "text": "a query nobody judged"},
    ]
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8"
    )
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td3\t1\nq3\td8\t1\nq4\td5\t1\nno-text\td1\t1\n",
        encoding="utf-8",
    )
    return folder


def run_eval(capsys, tiny_beir: Path, cache_dir: Path, tmp_path: Path, *extra: str):
    return run_cli(
        capsys,
        "eval",
        "--corpus",
        str(tiny_beir),
        "--queries",
        str(tiny_beir / "queries.jsonl"),
        "--qrels",
        str(tiny_beir / "qrels" / "test.tsv"),
        "--index",
        str(tmp_path / "eval-index"),
        "--cache-dir",
        str(cache_dir),
        *extra,
    )


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # The titles are found first; q4 shares no word with any paper, so BM25 alone
        # returns nothing for it and it scores 0; the dense ranking still finds d5 somewhere.
        ("lexical", {"nDCG@10": 0.75, "Recall@100": 0.75, "MRR@10": 0.75}),
        ("dense", {"Recall@100": 1.0}),
    ],
)
def test_eval_scores_every_judged_query(capsys, tiny_beir, cache_dir, tmp_path, mode, expected):
    out_file = tmp_path / "results" / "eval.json"
    code, out, err = run_eval(
        capsys, tiny_beir, cache_dir, tmp_path, "--mode", mode, "--out", str(out_file)
    )
    assert code == 0, err
    assert out.startswith("4 queries over 12 papers")
    assert "(1 judged queries have no text: skipped)" in out
    result = json.loads(out_file.read_text(encoding="utf-8"))
    assert result["queries"] == 4 and result["settings"]["mode"] == mode
    assert result["skipped_queries"] == ["no-text"]
    for name, value in expected.items():
        assert result["metrics"][name] == value
        assert f"{name:<11} {value:.4f}" in out
    assert 0.75 <= result["metrics"]["MRR@10"] <= 1.0


@pytest.mark.parametrize("fusion", ["blend", "learned", "rrf"])
def test_eval_takes_each_fusion(capsys, tiny_beir, cache_dir, tmp_path, fusion):
    """The three exact titles are found first whichever way hybrid fuses."""
    out_file = tmp_path / "eval.json"
    args = ("--fusion", fusion, "--out", str(out_file))
    code, _, err = run_eval(capsys, tiny_beir, cache_dir, tmp_path, *args)
    assert code == 0, err
    result = json.loads(out_file.read_text(encoding="utf-8"))
    assert result["settings"]["fusion"] == fusion and result["settings"]["mode"] == "hybrid"
    assert result["metrics"]["MRR@10"] >= 0.75


def test_eval_reuses_a_current_index(capsys, tiny_beir, cache_dir, tmp_path):
    assert run_eval(capsys, tiny_beir, cache_dir, tmp_path)[0] == 0
    code, _, err = run_eval(capsys, tiny_beir, cache_dir, tmp_path, "--year-from", "2020")
    assert code == 0
    assert "is current (12 papers, same corpus and model): kept as it is" in err


@pytest.mark.parametrize(
    ("queries", "qrels", "message"),
    [
        ('{"_id": "q1"}\n', "q1\td0\t1\n", "queries.jsonl:1: expected a JSON object with _id"),
        ('{"_id": "q1", "text": null}\n', "q1\td0\t1\n", "with _id and a non-empty text"),
        ("", "q1\td0\t1\n", "queries.jsonl: no queries"),
        ('{"_id": "q1", "text": "x"}\n', "q1\td0\thigh\n", "qrels.tsv:1: expected query-id"),
        ('{"_id": "q1", "text": "x"}\n', "query-id\tcorpus-id\tscore\n", "no relevance"),
    ],
)
def test_bad_eval_files_are_one_clear_error_line(capsys, tmp_path, queries, qrels, message):
    (tmp_path / "queries.jsonl").write_text(queries, encoding="utf-8")
    (tmp_path / "qrels.tsv").write_text(qrels, encoding="utf-8")
    code, _, err = run_cli(
        capsys,
        "eval",
        "--corpus",
        str(SEEDS),
        "--queries",
        str(tmp_path / "queries.jsonl"),
        "--qrels",
        str(tmp_path / "qrels.tsv"),
        "--index",
        str(tmp_path / "index"),
    )
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "index").exists()  # refused before any indexing


def test_trec_qrels_are_read_too(tmp_path):
    (tmp_path / "qrels.txt").write_text("q1 0 d3 2\nq1 0 d4 0\n", encoding="utf-8")
    assert read_qrels(tmp_path / "qrels.txt") == {"q1": {"d3": 2, "d4": 0}}
    with pytest.raises(EvalInputError, match=r"[Nn]o such file"):
        read_qrels(tmp_path / "missing.tsv")


def test_scifact_files_read_completely():
    scifact = shared_data("scifact")
    assert len(read_queries(scifact / "queries.jsonl")) >= 300
    test_qrels = read_qrels(scifact / "qrels" / "test.tsv")
    train_qrels = read_qrels(scifact / "qrels" / "train.tsv")
    assert (len(test_qrels), len(train_qrels)) == (300, 809)
