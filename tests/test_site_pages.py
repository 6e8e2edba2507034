"""The paper site's author and listing pages, quirk by quirk, on lines taken from the seeds."""

from __future__ import annotations

from datetime import date

import pytest

from indexing.parsers.site_pages import (
    ENTRY_HEADER,
    parse_author_list,
    parse_site_page,
    resolve_date,
    split_title_and_authors,
)

CAPTURE = date(2026, 6, 30)


@pytest.mark.parametrize(
    ("line", "score", "category", "month", "day", "year", "code"),
    [
        ("92.8IRJun 3", "92.8", "IR", "Jun", "3", None, None),
        ("IRApr 29, 2024Code", None, "IR", "Apr", "29", "2024", "Code"),
        ("IRMar 4", None, "IR", "Mar", "4", None, None),
        ("86.5CLMay 9Code", "86.5", "CL", "May", "9", None, "Code"),
        ("AIMay 26Code", None, "AI", "May", "26", None, "Code"),
        ("LGDec 13, 2024", None, "LG", "Dec", "13", "2024", None),
        ("9.5IRMay 24", "9.5", "IR", "May", "24", None, None),
    ],
)
def test_entry_header(line, score, category, month, day, year, code):
    match = ENTRY_HEADER.match(line)
    assert match is not None
    assert (match["score"], match["category"], match["month"], match["day"]) == (
        score,
        category,
        month,
        day,
    )
    assert (match["year"], match["code"]) == (year, code)


@pytest.mark.parametrize(
    "line",
    [
        "IR",
        "h-index6",
        "7 Papers",
        "Trinity: Syncretizing Multi-/Long-tail/Long-term Interests All in One",
        "IRMarch 4",
        "IR Mar 4",
    ],
)
def test_non_headers_are_not_headers(line):
    assert ENTRY_HEADER.match(line) is None


@pytest.mark.parametrize(
    ("glued", "title", "authors", "truncated", "affiliation"),
    [
        (
            "How Can Recommender Systems Benefit from Large Language Models: A SurveyJianghao Lin, "
            "Xinyi Dai, Yunjia Xi et al.",
            "How Can Recommender Systems Benefit from Large Language Models: A Survey",
            ["Jianghao Lin", "Xinyi Dai", "Yunjia Xi"],
            True,
            None,
        ),
        (  # an organisation as first author, after a camel-case title word
            "OneReason Technical ReportOneRec Team, Biao Yang, Boyang Ding et al.",
            "OneReason Technical Report",
            ["OneRec Team", "Biao Yang", "Boyang Ding"],
            True,
            None,
        ),
        (  # affiliation after " · "
            "Optimal Transport for Treatment Effect EstimationHao Wang, Zhichao Chen, Jiajun Fan et al. · pku",
            "Optimal Transport for Treatment Effect Estimation",
            ["Hao Wang", "Zhichao Chen", "Jiajun Fan"],
            True,
            "pku",
        ),
        (
            "Beyond Two-Tower Matching: Learning Sparse Retrievable Cross-Interactions for "
            "RecommendationLiangcai Su, Fan Yan, Jieming Zhu et al. · stanford",
            "Beyond Two-Tower Matching: Learning Sparse Retrievable Cross-Interactions for Recommendation",
            ["Liangcai Su", "Fan Yan", "Jieming Zhu"],
            True,
            "stanford",
        ),
        (  # complete author list: no "et al."
            "Performance Law of Large Language ModelsChuhan Wu, Ruiming Tang",
            "Performance Law of Large Language Models",
            ["Chuhan Wu", "Ruiming Tang"],
            False,
            None,
        ),
        (  # "et al" without the full stop
            "Counterfactual Multi-task Learning for Delayed Conversion Modeling in E-commerce Sales "
            "Pre-PromotionXin Song, Kaiyuan Li, Jinxin Hu et al",
            "Counterfactual Multi-task Learning for Delayed Conversion Modeling in E-commerce Sales "
            "Pre-Promotion",
            ["Xin Song", "Kaiyuan Li", "Jinxin Hu"],
            True,
            None,
        ),
        (  # camel case and capitals inside the title
            "GoLongRL: Capability-Oriented Long Context Reinforcement Learning with Multitask "
            "AlignmentMinxuan Lv, Tiehua Mei, Tanlong Du et al.",
            "GoLongRL: Capability-Oriented Long Context Reinforcement Learning with Multitask Alignment",
            ["Minxuan Lv", "Tiehua Mei", "Tanlong Du"],
            True,
            None,
        ),
        (
            "DeepSynth-Eval: Objectively Evaluating Information Consolidation in Deep Survey "
            "WritingHongzhi Zhang, Yuanze Hu, Tinghai Zhang et al.",
            "DeepSynth-Eval: Objectively Evaluating Information Consolidation in Deep Survey Writing",
            ["Hongzhi Zhang", "Yuanze Hu", "Tinghai Zhang"],
            True,
            None,
        ),
        (  # a title ending in a symbol, glued to the first author
            "AutoAssign+: Automatic Shared Embedding Assignment in Streaming RecommendationZiru Liu, "
            "Kecheng Chen, Fengyi Song et al.",
            "AutoAssign+: Automatic Shared Embedding Assignment in Streaming Recommendation",
            ["Ziru Liu", "Kecheng Chen", "Fengyi Song"],
            True,
            None,
        ),
        (
            "AdaF^2M^2Yongchun Zhu, Jingwu Chen",
            "AdaF^2M^2",
            ["Yongchun Zhu", "Jingwu Chen"],
            False,
            None,
        ),
        (  # three-word first author
            "CoIR: A Comprehensive Benchmark for Code Information Retrieval ModelsXiangyang Li, "
            "Kuicai Dong, Yi Quan Lee et al.",
            "CoIR: A Comprehensive Benchmark for Code Information Retrieval Models",
            ["Xiangyang Li", "Kuicai Dong", "Yi Quan Lee"],
            True,
            None,
        ),
    ],
)
def test_split_glued_title_and_authors(glued, title, authors, truncated, affiliation):
    split = split_title_and_authors(glued)
    assert split is not None
    found_title, found_authors = split
    assert found_title == title
    assert found_authors.names == authors
    assert found_authors.truncated is truncated
    assert found_authors.affiliation == affiliation


@pytest.mark.parametrize(
    "line",
    [
        "A title with no authors at all",
        "all lower case then nothing glued",
        "Trinity: Syncretizing Multi-/Long-tail/Long-term Interests All in One",
    ],
)
def test_glued_line_without_authors_is_not_split(line):
    assert split_title_and_authors(line) is None


@pytest.mark.parametrize(
    ("line", "names", "truncated"),
    [
        (
            "Pengfei Tong, Siyuan Chen, Chenwei Zhang et al.",
            ["Pengfei Tong", "Siyuan Chen", "Chenwei Zhang"],
            True,
        ),
        ("Chuhan Wu, Ruiming Tang", ["Chuhan Wu", "Ruiming Tang"], False),
        ("Xin Song, Kaiyuan Li, Jinxin Hu et al", ["Xin Song", "Kaiyuan Li", "Jinxin Hu"], True),
    ],
)
def test_author_lines(line, names, truncated):
    authors = parse_author_list(line)
    assert (authors.names, authors.truncated) == (names, truncated)


@pytest.mark.parametrize(
    ("month", "day", "year", "capture", "expected", "inferred"),
    [
        ("Apr", 29, 2024, CAPTURE, date(2024, 4, 29), False),
        ("Jun", 3, None, CAPTURE, date(2026, 6, 3), True),
        ("Jun", 4, None, date(2026, 6, 4), date(2026, 6, 4), True),  # capture day itself
        ("Dec", 1, None, CAPTURE, date(2025, 12, 1), True),  # later in the year: last year's
    ],
)
def test_dates_resolve_against_the_capture_date(month, day, year, capture, expected, inferred):
    assert resolve_date(month, day, year, capture) == (expected, inferred)


AUTHOR_PAGE = """Zuotao Liu

IR
h-index6
7papers
35citations
Novelty54%
AI Score47

2 Papers

IRMar 4
Not All Candidates are Created Equal: A Heterogeneity-Aware Approach to Pre-ranking in Recommender Systems

Pengfei Tong, Siyuan Chen, Chenwei Zhang et al.

Most large-scale recommender systems follow a multi-stage cascade of retrieval, pre-ranking, ranking, and re-ranking.

IRFeb 5, 2024
Trinity: Syncretizing Multi-/Long-tail/Long-term Interests All in One

Jing Yan, Liu Jiang, Jianfei Cui et al.

Interest modeling in recommender system has been a constant topic for improving user experience.
"""


def test_author_page_entries_and_profile():
    papers, issues = parse_site_page(AUTHOR_PAGE, "000.txt", CAPTURE)
    assert issues == []
    assert [p.title for p in papers] == [
        "Not All Candidates are Created Equal: A Heterogeneity-Aware Approach to Pre-ranking in "
        "Recommender Systems",
        "Trinity: Syncretizing Multi-/Long-tail/Long-term Interests All in One",
    ]
    first, second = papers
    assert first.published == date(2026, 3, 4) and first.published_inferred
    assert second.published == date(2024, 2, 5) and not second.published_inferred
    assert first.profile is not None
    assert first.profile.model_dump() == {
        "name": "Zuotao Liu",
        "field": "IR",
        "h_index": 6,
        "papers": 7,
        "citations": 35,
        "novelty_percent": 54,
        "ai_score": 47,
    }
    assert second.abstract.startswith("Interest modeling")


def test_entry_missing_its_authors_line_is_reported_and_neighbours_survive():
    broken = AUTHOR_PAGE.replace("Pengfei Tong, Siyuan Chen, Chenwei Zhang et al.\n", "")
    papers, issues = parse_site_page(broken, "000.txt", CAPTURE)
    assert [p.title for p in papers] == [
        "Trinity: Syncretizing Multi-/Long-tail/Long-term Interests All in One"
    ]
    assert papers[0].abstract.startswith("Interest modeling")  # not the broken entry's
    assert [(i.source, i.line) for i in issues] == [("000.txt", 12)]
    assert "title" in issues[0].reason


LISTING = """IRJun 9, 2023Code
How Can Recommender Systems Benefit from Large Language Models: A SurveyJianghao Lin, Xinyi Dai, Yunjia Xi et al.
With the rapid development of online services, recommender systems (RS) have become increasingly indispensable.
IRJun 4
OneReason Technical ReportOneRec Team, Biao Yang, Boyang Ding et al.
Generative recommendation models in the OneRec family have been widely deployed in many real-world services.
"""


def test_listing_page_entries():
    papers, issues = parse_site_page(LISTING, "004.txt", CAPTURE)
    assert issues == []
    survey, report = papers
    assert survey.has_code and survey.category == "IR" and survey.published == date(2023, 6, 9)
    assert survey.authors == ["Jianghao Lin", "Xinyi Dai", "Yunjia Xi"]
    assert survey.profile is None
    assert report.title == "OneReason Technical Report"
    assert report.authors[0] == "OneRec Team"
    assert report.published == date(2026, 6, 4) and report.published_inferred


def test_listing_entry_without_abstract_is_not_merged_into_the_next():
    broken = LISTING.replace(
        "With the rapid development of online services, recommender systems (RS) have become "
        "increasingly indispensable.\n",
        "",
    )
    papers, issues = parse_site_page(broken, "004.txt", CAPTURE)
    assert [p.title for p in papers] == ["OneReason Technical Report"]
    assert [(i.source, i.line) for i in issues] == [("004.txt", 1)]


def test_unsplittable_glued_line_is_reported_with_its_line():
    broken = LISTING.replace(
        "OneReason Technical ReportOneRec Team, Biao Yang, Boyang Ding et al.",
        "onereason technical report by the onerec team",
    )
    papers, issues = parse_site_page(broken, "004.txt", CAPTURE)
    assert len(papers) == 1
    assert issues[0].line == 4 and "authors" in issues[0].reason


def test_profile_paper_count_mismatch_is_reported():
    papers, issues = parse_site_page(
        AUTHOR_PAGE.replace("2 Papers", "3 Papers"), "000.txt", CAPTURE
    )
    assert len(papers) == 2
    assert "3 papers" in issues[0].reason
