"""The search page in a real browser: Debian's Chromium driven by Playwright, against a real
``papersearch serve`` over the seed index on a free loopback port.

Every test also checks, on leaving its page, that the page raised no JavaScript error and
requested nothing from another host (the machine has no internet; the page must not need it).
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import REPO, Server, running_server

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: run `make install-test`"
)
expect = sync_api.expect

CHROMIUM = Path(os.environ.get("PAPERSEARCH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Set by `make screenshots`: where the README's screenshot is written.
SCREENSHOT_DIR = os.environ.get("PAPERSEARCH_SCREENSHOT_DIR")

QUERY = "cross-domain live-streaming recommendation"
EXPECTED = "Bridging Short Videos and Live Streams"
KEY = "ui-test-key"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} not found: the browser tests need Debian's Chromium "
    "(`apt-get install -y chromium`, which `make test` runs where it is root)",
)


@pytest.fixture(scope="module")
def server(seed_build) -> Iterator[Server]:
    with running_server(seed_build.index_dir) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def _open_context(browser, base_url: str, **options):
    """A fresh browser profile whose pages are watched for errors and off-site requests."""
    context = browser.new_context(base_url=base_url, **options)
    context.set_default_timeout(15_000)
    problems: list[str] = []

    def watch(page) -> None:
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and not message.text.startswith("Failed to load resource")
                and problems.append(f"console: {message.text}")
            ),
        )
        page.on(
            "request",
            lambda request: (
                not request.url.startswith((base_url, "data:"))
                and problems.append(f"off-site request: {request.url}")
            ),
        )

    context.on("page", watch)
    return context, problems


@pytest.fixture
def page(browser, server):
    context, problems = _open_context(browser, server.url, viewport={"width": 1400, "height": 900})
    yield context.new_page()
    context.close()
    assert not problems, problems


def _results(page):
    return page.locator("#results > li.hit")


def _search(page, query: str) -> None:
    page.goto("/")
    page.locator("#q").press_sequentially(query, delay=15)  # as typed: the debounce runs
    expect(page.locator("#status")).to_contain_text("match")


def _settled(page) -> None:
    """Wait for the search a change started (at once, for a filter) to be answered."""
    expect(page.locator("#status")).not_to_have_class(re.compile("loading"))


def test_the_form_is_built_from_what_the_service_describes(page):
    page.goto("/")
    config = page.request.get("/config").json()
    expect(page.locator("#q")).to_have_attribute("maxlength", str(config["max_query_chars"]))
    expect(page.locator("#title")).to_have_attribute("maxlength", str(config["title_max_chars"]))
    for fact in config["filters"]:
        field = page.locator(f"#filters [name={fact['name']}]")
        expect(field).to_have_count(1)
        if fact["max_length"] is not None and not fact["facet"]:
            expect(field).to_have_attribute("maxlength", str(fact["max_length"]))
        if fact["maximum"] is not None:
            expect(field).to_have_attribute("max", str(fact["maximum"]))
    default = next(m for m in config["modes"] if m["value"] == config["default_mode"])
    expect(page.locator("select[name=mode] option").first).to_have_text(default["label"])


def test_marks_land_on_the_words_after_characters_outside_the_bmp(page):
    """The API counts code points, JavaScript UTF-16 units: after a character outside the
    BMP (a mathematical letter, an emoji) the two differ by one."""
    page.goto("/")
    text = "An \U0001d4aa(n) recommendation model for \U0001f600 users"
    spans = [{"start": 8, "end": 22}, {"start": 35, "end": 40}]
    assert [text[s["start"] : s["end"]] for s in spans] == ["recommendation", "users"]
    marks = page.evaluate(
        """async ([text, spans]) => {
            const { marked } = await import("/static/js/render.js");
            return marked(text, spans).filter((part) => part.nodeName === "MARK")
                .map((part) => part.textContent);
        }""",
        [text, spans],
    )
    assert marks == ["recommendation", "users"]


def test_typing_a_query_shows_the_expected_paper_and_a_shareable_address(page):
    _search(page, QUERY)
    titles = _results(page).locator(".hit-title").all_inner_texts()
    assert len(titles) == 10
    assert any(EXPECTED in title for title in titles[:3]), titles
    first = _results(page).first
    expect(first.locator(".rank")).to_have_text("1")
    expect(first.locator(".score-bar")).to_be_visible()
    expect(first.locator(".meta time")).to_have_attribute(
        "datetime", re.compile(r"\d{4}-\d\d-\d\d")
    )
    # The words marked are exactly those the API says matched (`terms` of each highlight).
    answer = page.request.get("/search", params={"q": QUERY, "k": 10}).json()
    matched = [
        highlight["text"][span["start"] : span["end"]]
        for hit in answer["results"]
        for highlight in hit["highlights"]
        for span in highlight["terms"]
    ]
    assert matched
    assert page.locator("#results .highlight mark").all_inner_texts() == matched
    assert parse_qs(urlsplit(page.url).query) == {"q": [QUERY]}

    # The address alone brings the same results back (a shared link).
    page.goto(page.url)
    expect(_results(page)).to_have_count(10)
    assert _results(page).locator(".hit-title").all_inner_texts() == titles
    expect(page.locator("#q")).to_have_value(QUERY)


def test_a_paper_without_a_title_shows_its_arxiv_id(page, server):
    hits = httpx.get(
        f"{server.url}/search", params={"q": "arXiv listing", "k": 100, "mode": "dense"}
    ).json()["results"]
    untitled = next(hit for hit in hits if hit["title"] is None)
    page.goto(f"/paper/{untitled['id']}")
    expect(page.locator("#paper h1")).to_have_text(f"arXiv:{untitled['arxiv_id']}")
    expect(page.locator("#paper .facts a")).to_have_attribute("href", untitled["url"])


def test_filters_narrow_the_results_and_live_in_the_address(page):
    _search(page, "recommendation")
    page.select_option("select[name=category]", "LG")
    expect(page.locator("#status")).to_contain_text("11 papers match")
    assert set(_results(page).locator(".category").all_inner_texts()) == {"LG"}
    page.fill("input[name=year_from]", "2025")
    page.press("input[name=year_from]", "Tab")
    _settled(page)
    years = [
        int(d[:4])
        for d in _results(page)
        .locator("time")
        .evaluate_all("nodes => nodes.map(n => n.getAttribute('datetime'))")
    ]
    assert years and min(years) >= 2025
    assert parse_qs(urlsplit(page.url).query) == {
        "q": ["recommendation"],
        "category": ["LG"],
        "year_from": ["2025"],
    }
    page.select_option("select[name=has_code]", "true")
    page.select_option("select[name=sort]", "date")
    expect(page.locator("#status")).to_contain_text("newest first")
    page.reload()  # the filters come back from the address
    expect(page.locator("select[name=category]")).to_have_value("LG")
    expect(page.locator("select[name=sort]")).to_have_value("date")
    expect(page.locator("input[name=year_from]")).to_have_value("2025")


def test_a_bad_filter_value_is_explained_beside_the_filter(page):
    _search(page, "recommendation")
    page.fill("input[name=year_from]", "2026")
    page.fill("input[name=year_to]", "2020")
    page.press("input[name=year_to]", "Tab")
    expect(page.locator("#filter-error")).to_contain_text("year_from 2026 is after year_to 2020")
    expect(page.locator("input[name=year_from]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#status")).to_have_class(re.compile("error"))
    expect(_results(page)).to_have_count(0)
    page.fill("input[name=year_to]", "99")
    page.press("input[name=year_to]", "Tab")
    expect(page.locator("#filter-error")).to_contain_text("greater than or equal to 1000")
    page.fill("input[name=year_to]", "")
    page.press("input[name=year_to]", "Tab")
    expect(page.locator("#filter-error")).to_be_hidden()
    expect(_results(page)).to_have_count(10)


def test_no_results_says_so_and_offers_to_clear_the_filters(page):
    _search(page, "recommendation")
    page.locator("input[name=author]").press_sequentially("Nobody Atall", delay=10)
    expect(page.locator(".message.empty")).to_contain_text(
        "No paper matches “recommendation” with these filters"
    )
    expect(_results(page)).to_have_count(0)
    page.get_by_role("button", name="Clear filters").first.click()
    expect(_results(page)).to_have_count(10)
    expect(page.locator("input[name=author]")).to_have_value("")


def test_pages_move_through_the_results_and_back(page):
    _search(page, "recommendation")
    first_page = _results(page).locator(".hit-title").all_inner_texts()
    page.get_by_role("button", name="Next →").click()
    expect(_results(page).first.locator(".rank")).to_have_text("11")
    expect(page.locator("#page-info")).to_contain_text("Page 2 of")
    assert parse_qs(urlsplit(page.url).query)["page"] == ["2"]
    assert not set(_results(page).locator(".hit-title").all_inner_texts()) & set(first_page)
    page.go_back()
    expect(_results(page).first.locator(".rank")).to_have_text("1")
    assert _results(page).locator(".hit-title").all_inner_texts() == first_page


def test_a_paper_page_shows_the_whole_record_and_its_similar_papers(page, server):
    _search(page, QUERY)
    link = _results(page).locator(".hit-title", has_text=EXPECTED)
    link.click()
    expect(page).to_have_url(re.compile(r"/paper/bridging-short-videos"))
    paper_id = urlsplit(page.url).path.removeprefix("/paper/")
    paper = httpx.get(f"{server.url}/papers/{paper_id}").json()
    expect(page.locator("#paper h1")).to_have_text(paper["title"])
    expect(page.locator("#paper .abstract")).to_have_text(paper["abstract"])
    expect(page.locator("#paper-similar > li")).to_have_count(10)
    expect(page).to_have_title(re.compile("Bridging Short Videos"))
    expect(page.locator("#map-panel")).to_have_attribute("data-highlighted", "11")
    # Back to the results it came from, then follow a neighbour.
    expect(page.locator("#back-link")).to_have_attribute("href", re.compile(r"^/\?q="))
    neighbour = page.locator("#paper-similar .hit-title").first
    neighbour_title = neighbour.inner_text()
    neighbour.click()
    expect(page.locator("#paper h1")).to_have_text(neighbour_title)


def test_similar_papers_open_under_a_result(page):
    _search(page, QUERY)
    first = _results(page).first
    toggle = first.get_by_role("button", name="Similar papers")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    similar = first.locator(".similar-list li a")
    expect(similar).to_have_count(5)
    title = similar.first.inner_text()
    similar.first.click()
    expect(page.locator("#paper h1")).to_have_text(title)


def test_an_unknown_paper_gets_a_404_page_that_says_so(page):
    response = page.goto("/paper/no-such-paper")
    assert response.status == 404
    expect(page.locator("#paper h1")).to_have_text("No such paper")
    expect(page.locator("#paper")).to_contain_text("no paper with id 'no-such-paper'")


def test_the_title_box_finds_similar_papers_or_suggests_titles(page):
    page.goto("/")
    page.fill("#title", "long term intrest clock")  # a typo, and only the start
    page.press("#title", "Enter")
    expect(page.locator(".message.matched h3")).to_have_text(
        "Long-Term Interest Clock: Fine-Grained Time Perception in Streaming Recommendation System"
    )
    expect(_results(page)).to_have_count(10)
    assert "like=" in page.url

    page.fill("#title", "Heterogeneity pre-ranking candidates")
    page.press("#title", "Enter")
    expect(page.locator(".message.empty")).to_contain_text("Did you mean")
    suggestion = page.locator(".suggestions button").first
    suggested = suggestion.inner_text()
    suggestion.click()
    expect(page.locator(".message.matched h3")).to_have_text(suggested)


def test_the_map_draws_every_paper_and_lights_the_results(page):
    page.goto("/")
    corpus_map = page.locator("#map-panel")
    expect(corpus_map).to_have_attribute("data-points", "98")
    painted = page.evaluate(
        """() => {
            const canvas = document.querySelector('#map');
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            const colours = new Set();
            let inked = 0;
            for (let i = 0; i < pixels.length; i += 4) {
                if (pixels[i + 3] > 0) { inked++; colours.add(pixels.slice(i, i + 3).join()); }
            }
            return {inked, colours: colours.size};
        }"""
    )
    assert painted["inked"] > 1000 and painted["colours"] > 5, painted
    expect(page.locator(".map-legend .legend-item").first).to_contain_text("IR (61)")

    page.locator("#q").fill(QUERY)
    expect(corpus_map).to_have_attribute("data-highlighted", "10")
    # Hover the first result's dot: its title shows; a click opens it.
    first_id = _results(page).first.get_attribute("data-id")
    first_title = _results(page).first.locator(".hit-title").inner_text()
    x, y = page.evaluate("id => document.querySelector('#map').paperPosition(id)", first_id)
    page.mouse.move(x, y)
    expect(page.locator(".map-tooltip")).to_contain_text(first_title)
    expect(page.locator(".map-tooltip")).to_contain_text("result 1")
    page.mouse.click(x, y)
    expect(page).to_have_url(re.compile(f"/paper/{re.escape(first_id)}$"))


def test_a_legend_entry_filters_by_its_category(page):
    _search(page, "language models")
    page.locator(".map-legend .legend-item", has_text="CL").click()
    expect(page.locator("select[name=category]")).to_have_value("CL")
    expect(page.locator("#status")).to_contain_text("9 papers match")


def test_the_keyboard_reaches_everything(page):
    page.goto("/")
    page.locator("body").press("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type(QUERY)
    expect(_results(page)).to_have_count(10)
    page.keyboard.press("ArrowDown")
    expect(_results(page).nth(0).locator(".hit-title")).to_be_focused()
    page.keyboard.press("ArrowDown")
    second = _results(page).nth(1).locator(".hit-title")
    expect(second).to_be_focused()
    title = second.inner_text()
    page.keyboard.press("Enter")
    expect(page.locator("#paper h1")).to_have_text(title)


def test_copy_bibtex_puts_the_entry_on_the_clipboard(browser, server):
    context, problems = _open_context(browser, server.url)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    _search(page, QUERY)
    result = _results(page).filter(has=page.get_by_role("button", name="Copy BibTeX")).first
    result.get_by_role("button", name="Copy BibTeX").click()
    expect(page.locator("#toast")).to_have_text("BibTeX copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("@") and "title = {" in copied, copied
    context.close()
    assert not problems, problems


def test_a_slow_answer_shows_progress_and_only_the_latest_query_is_shown(page):
    page.goto("/")
    expect(page.locator(".message.intro")).to_contain_text("Search 98 papers")
    # 700 ms more a request: the first search is still running when the query changes.
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 700, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    page.locator("#q").fill("diffusion models for images")
    expect(page.locator("#status")).to_have_text("Searching…")
    expect(page.locator("#results")).to_have_attribute("aria-busy", "true")
    page.locator("#q").fill(QUERY)
    expect(page.locator("#status")).to_contain_text("papers match", timeout=10_000)
    expect(_results(page).locator(".hit-title", has_text=EXPECTED)).to_have_count(1)
    assert parse_qs(urlsplit(page.url).query) == {"q": [QUERY]}


def test_an_unreachable_service_is_reported_and_retried(page):
    _search(page, QUERY)
    page.context.set_offline(True)
    page.locator("#q").fill("diffusion models")
    expect(page.locator(".message.error")).to_contain_text("cannot be reached")
    page.context.set_offline(False)
    page.get_by_role("button", name="Retry").click()
    expect(_results(page)).to_have_count(10)


@pytest.mark.parametrize(
    ("scheme", "dark"), [("light", False), ("dark", True)], ids=["light", "dark"]
)
def test_a_phone_gets_one_readable_column_in_the_system_theme(browser, server, scheme, dark):
    context, problems = _open_context(
        browser,
        server.url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        color_scheme=scheme,
    )
    page = context.new_page()
    _search(page, QUERY)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    box = _results(page).first.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    font = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('.highlight')).fontSize)"
    )
    assert font >= 14
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = map(int, re.findall(r"\d+", background)[:3])
    assert (max(red, green, blue) < 60) if dark else (min(red, green, blue) > 200), background
    context.close()
    assert not problems, problems


def test_with_an_api_key_the_page_asks_for_it(browser, seed_build):
    with running_server(seed_build.index_dir, PAPERSEARCH_API_KEY=KEY) as keyed:
        context, problems = _open_context(browser, keyed.url)
        page = context.new_page()
        page.goto(f"/?q={QUERY}")
        expect(page.locator("#key-prompt")).to_be_visible()
        expect(page.locator(".message.error").first).to_contain_text("needs an API key")
        page.fill("#api-key", KEY)
        page.press("#api-key", "Enter")
        expect(_results(page)).to_have_count(10)
        expect(page.locator("#key-prompt")).to_be_hidden()
        context.close()
    assert not problems, problems


def test_screenshot_of_the_results_page(browser, server, tmp_path):
    """The README's picture: taken here so it shows the page as it is."""
    context, problems = _open_context(
        browser, server.url, viewport={"width": 1400, "height": 900}, color_scheme="light"
    )
    page = context.new_page()
    _search(page, QUERY)
    expect(page.locator("#map-panel")).to_have_attribute("data-highlighted", "10")
    page.evaluate("document.activeElement.blur()")  # no focus ring in the picture
    folder = Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    if not folder.is_absolute():
        folder = REPO / folder
    target = folder / "search-page.png"
    page.screenshot(path=target)
    context.close()
    assert not problems, problems
    header = target.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1400, 900)


def test_marked_papers_bring_more_like_them_and_a_shareable_address(page):
    _search(page, QUERY)
    marked = [
        _results(page).nth(i).get_attribute("data-id") for i in range(2)
    ]  # the first two hits
    for i in range(2):
        _results(page).nth(i).locator(".mark-toggle").click()
    expect(page.locator("#marked-count")).to_have_text("2 papers marked")
    expect(_results(page).first.locator(".mark-toggle")).to_have_attribute("aria-pressed", "true")
    page.locator("#more-like").click()
    expect(page.locator("#status")).to_contain_text("Papers like the 2 marked papers")
    shown = [_results(page).nth(i).get_attribute("data-id") for i in range(_results(page).count())]
    assert shown and not set(marked) & set(shown)
    assert parse_qs(urlsplit(page.url).query)["more"] == [",".join(marked)]
    # The address alone brings the same list back.
    page.goto(page.url)
    expect(page.locator("#status")).to_contain_text("Papers like the 2 marked papers")
    assert [_results(page).nth(i).get_attribute("data-id") for i in range(len(shown))] == shown


def test_a_pasted_abstract_finds_its_own_paper_first(page):
    page.goto("/")
    paper = page.request.get("/papers", params={"limit": 1}).json()["papers"][0]
    page.locator(".text-panel summary").click()
    page.locator("#text-input").fill(paper["abstract"])
    page.locator("#text-form button[type=submit]").click()
    expect(page.locator("#status")).to_contain_text("Papers like the pasted text")
    expect(_results(page).first).to_have_attribute("data-id", paper["id"])
    expect(page.locator("#notice")).to_contain_text("Key terms:")


def test_export_these_results_downloads_a_bib_file_that_parses(page, tmp_path):
    import bibtexparser

    _search(page, "recommendation")
    shown = _results(page).count()
    page.locator("#export-format").select_option("bibtex")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export", exact=True).click()
    download = download_info.value
    assert download.suggested_filename == "papersearch.bib"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    entries = bibtexparser.loads(saved.read_text(encoding="utf-8")).entries
    assert len(entries) == shown and shown > 0  # the page shown, one entry per result
