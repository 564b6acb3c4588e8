"""tools/render_results.py: the README's numbers are the results files' numbers."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "render_results.py"

spec = importlib.util.spec_from_file_location("render_results", SCRIPT)
render_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(render_results)

RESULTS = """# Results

Text around the rows is kept.

| | wall time |
|---|---|
| `make demo` | **10 min** |

<!-- stnas:results:begin -->
| corpus | set | arch | params | LM | LM weight | word penalty | %WER | sub | del | ins | words | %OOV | decode dir |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
| tts | dev | st | 0.08M | tg | 1 | 0.5 | 30.32 | 273 | 45 | 38 | 1174 | 5.37 | exp/a |
| tts | test | st | 0.08M | tg | 1 | 0.5 | 31.44 | 294 | 40 | 37 | 1180 | 4.83 | exp/b |
| tts | dev | tdnn_d | 0.12M | tg | 1.5 | 0 | 30.24 | 270 | 41 | 44 | 1174 | 5.37 | exp/c |
| tts | test | tdnn_d | 0.12M | tg | 1.5 | 0 | 31.27 | 288 | 41 | 40 | 1180 | 4.83 | exp/d |
| wsj | dev93 | st | 11.9M | tg | 1 | 0 | 9.10 | 1 | 1 | 1 | 100 | 1.00 | exp/e |
<!-- stnas:results:end -->
"""

STUDY = """<!-- header -->
# Study

| method | runs | test %WER | p |
|---|---|---:|---|
| ST-NAS | 3 | 32.18 ± 0.20 | – |
| DARTS | 3 | 29.46 ± 1.83 | 0.034 |

* first comparison
* second comparison

Another list:

* DARTS: 1.00
"""

PAGE = """# Page

<!-- render: results tts -->
<!-- /render -->

<!-- render: table bench/results/study.md columns="method;test %WER" -->
stale text that the renderer replaces
<!-- /render -->

<!-- render: list bench/results/study.md 2 -->
<!-- /render -->

<!-- render: table RESULTS.md 1 -->
<!-- /render -->
"""


def run(root, *args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), *args], capture_output=True, text=True
    )


@pytest.fixture
def example(tmp_path):
    (tmp_path / "RESULTS.md").write_text(RESULTS)
    (tmp_path / "bench" / "results").mkdir(parents=True)
    (tmp_path / "bench" / "results" / "study.md").write_text(STUDY)
    (tmp_path / "README.md").write_text(PAGE)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text(PAGE.replace("results tts", "results wsj"))
    return tmp_path


def test_readme_and_docs_agree_with_the_results_files():
    r = run(REPO, "--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_readme_holds_no_number_outside_generated_blocks():
    text = (REPO / "README.md").read_text()
    assert text.count("<!-- render: ") >= 2
    for pattern in (r"<!-- render:.*?<!-- /render -->", r"```.*?```", r"`[^`]*`", r"\]\([^)]*\)"):
        text = re.sub(pattern, "", text, flags=re.S)
    typed = [line for line in text.splitlines() if re.search(r"\d", line)]
    assert not typed, f"numbers typed by hand in README.md: {typed}"


def test_readme_is_short_and_its_doc_links_resolve():
    readme = REPO / "README.md"
    assert len(readme.read_bytes()) <= 12 * 1024
    for page in [readme, *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_render_fills_blocks_from_their_sources(example):
    r = run(example, "--check")
    assert r.returncode == 1 and "README.md (rendered)" in r.stdout, r.stdout + r.stderr
    assert run(example).returncode == 0
    assert run(example, "--check").returncode == 0
    page = (example / "README.md").read_text()
    assert "stale text" not in page
    assert (
        "| ST-NAS searched, retrained with CTC-CRF | 0.08M | 30.32 | 31.44 | 5.37 / 4.83 | 1, 0.5 |"
    ) in page
    assert "| TDNN-D (hand design), trained the same way | 0.12M | 30.24 | 31.27 |" in page
    assert "| method | test %WER |\n|---|---:|\n| ST-NAS | 32.18 ± 0.20 |" in page
    assert "* DARTS: 1.00" in page and "first comparison" not in page
    assert "| `make demo` | **10 min** |" in page
    assert "wsj" not in page
    assert (
        "| `wsj` | params | dev93 %WER [95 % CI] |" in (example / "docs" / "results.md").read_text()
    )


def test_a_changed_source_number_fails_the_check_until_rendered(example):
    assert run(example).returncode == 0
    study = example / "bench" / "results" / "study.md"
    study.write_text(STUDY.replace("29.46 ± 1.83", "28.99 ± 1.83"))
    r = run(example, "--check")
    assert r.returncode == 1
    assert "-| DARTS | 29.46 ± 1.83 |" in r.stdout and "+| DARTS | 28.99 ± 1.83 |" in r.stdout
    assert "29.46" in (example / "README.md").read_text()  # --check writes nothing
    results = example / "RESULTS.md"
    results.write_text(RESULTS.replace("| 31.44 |", "| 31.50 |"))
    assert run(example, "--check").returncode == 1
    assert run(example).returncode == 0
    assert run(example, "--check").returncode == 0
    page = (example / "README.md").read_text()
    assert "28.99 ± 1.83" in page and "| 31.50 |" in page and "29.46" not in page


@pytest.mark.parametrize(
    "spec, message",
    [
        ("results swbd", "no rows for corpus 'swbd'"),
        ("table bench/results/missing.md", "no file bench/results/missing.md"),
        ("table bench/results/study.md 3", "has 1 table(s), not 3"),
        ('table bench/results/study.md columns="method;dev %WER"', "no column 'dev %WER'"),
        ("chart RESULTS.md", "not understood"),
    ],
)
def test_a_block_that_cannot_be_rendered_is_an_error(example, spec, message):
    (example / "README.md").write_text(f"<!-- render: {spec} -->\n<!-- /render -->\n")
    r = run(example, "--check")
    assert r.returncode == 2 and message in r.stderr and "README.md:1" in r.stderr, r.stderr


def test_an_unclosed_block_is_an_error(example):
    (example / "README.md").write_text("<!-- render: results tts -->\n| old |\n")
    with pytest.raises(render_results.RenderError, match="never closed"):
        render_results.render_text(example, (example / "README.md").read_text(), "README.md")
