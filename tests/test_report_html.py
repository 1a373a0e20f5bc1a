"""The quickstart report page read as a newcomer reads it: verdict first, a real table, figures,
then the protocol and configuration folded away; built from a slice of a committed results file."""

from __future__ import annotations

import copy
import json
import statistics
from html.parser import HTMLParser
from pathlib import Path

import pytest

from vsslkit.cli import main
from vsslkit.experiments import quickstart as qs
from vsslkit.viz.report_html import config_table, render_html

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "quickstart_3seeds.json"
VOID = {"meta", "br", "img", "input", "hr", "link", "col", "source", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None):
        self.tag, self.attrs, self.parent, self.content = tag, attrs, parent, []  # text and nodes, in order

    @property
    def children(self) -> list[Node]:
        return [c for c in self.content if isinstance(c, Node)]

    def all_text(self) -> str:
        if self.tag in ("script", "style"):
            return ""
        return "".join(c if isinstance(c, str) else c.all_text() for c in self.content)

    def find_all(self, tag: str) -> list[Node]:
        found = [c for c in self.children if c.tag == tag]
        return found + [n for c in self.children for n in c.find_all(tag)]


class Tree(HTMLParser):
    """A minimal DOM from the standard library's HTML parser (enough to check the page's structure)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = self.node = Node("#root", {}, None)
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.node)
        self.node.content.append(node)
        if tag not in VOID:
            self.node = node

    def handle_endtag(self, tag):
        node = self.node
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.node = node.parent

    def handle_data(self, data):
        self.node.content.append(data)


def results_slice(seeds: int) -> dict:
    """The committed 3-seed results cut to the first `seeds` seeds (the protocol says which)."""
    full = json.loads(RESULTS.read_text())
    part = copy.deepcopy(full)
    part["runs"] = {name: runs[:seeds] for name, runs in full["runs"].items()}
    part["protocol"]["seeds"] = full["protocol"]["seeds"][:seeds]
    return part


def body_of(page_html: str) -> Node:
    (body,) = Tree(page_html).root.find_all("body")
    return body


def test_report_reads_top_down_from_a_results_file(tmp_path):
    results = results_slice(2)
    results.pop("pretext_curves", None)  # as in results files written before the curves were saved
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    assert main(["quickstart", "--report-from", str(path), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    body = body_of(page)
    # the verdict is the first content under the title, one sentence per measure, quoting the paired numbers
    assert [c.tag for c in body.children[:2]] == ["h1", "section"] and body.children[1].attrs["class"] == "verdict"
    sentences = [p.all_text() for p in body.children[1].find_all("p")]
    runs = results["runs"]
    diffs = [b["linear_probe"]["video_accuracy"] - a["linear_probe"]["video_accuracy"]
             for a, b in zip(runs["random init"], runs["speed-change pretrained"])]
    assert len(sentences) == 3 and sentences[0].startswith(("Pretraining", "No clear difference"))
    wins, numbers = sum(d > 0 for d in diffs), f"{statistics.fmean(diffs):+.1f} ± {statistics.stdev(diffs):.1f} points"
    if wins == len(diffs):  # "beats" only when pretraining is better on every paired seed
        sentence = (f"Pretraining beats random initialisation on linear-probe video accuracy: {numbers} "
                    f"(paired, better on {wins} of {len(diffs)} seeds).")
        expected = (sentence, "better")
    else:
        sentence = (f"No clear difference on linear-probe video accuracy: {numbers} (paired, pretraining better on "
                    f"{wins} of {len(diffs)} seeds).")
        expected = (sentence, "worse" if wins == 0 and statistics.fmean(diffs) < 0 else "mixed")
    assert (sentences[1], body.children[1].find_all("p")[1].attrs["class"]) == expected
    assert "R@1" in sentences[2]
    # the results table is a real table, right after the verdict
    results_section = body.children[2]
    (table,) = results_section.find_all("table")
    header = [th.all_text() for th in table.find_all("th")]
    assert header == ["initialisation"] + [title for *_, title in qs.METRICS]
    rows = [[td.all_text() for td in tr.find_all("td")] for tr in table.find_all("tr")[1:]]
    acc = [r["finetune"]["video_accuracy"] for r in runs["random init"]]
    assert rows[0][:2] == ["random init", f"{statistics.fmean(acc):.1f} ± {statistics.stdev(acc):.1f}"]
    assert [r[0] for r in rows] == ["random init", "speed-change pretrained"]
    assert "without labels" in results_section.all_text() and "chance 7.1 %" in results_section.all_text()
    # no preformatted markdown anywhere: no <pre>, no pipe rows, no code fences
    text = body.all_text()
    assert not body.find_all("pre") and "|---" not in text and "| random init |" not in text and "```" not in text
    # figures, plotly.js inlined once (opens offline), paired lines per seed
    figures = [d for d in body.find_all("div") if d.attrs.get("class") == "figure"]
    assert len(figures) == 5 and all(f.find_all("div") for f in figures)  # paired, R@k, fine-tuning, 2 confusions
    assert page.count("plotly.js v") == 1 and 'src="https://cdn.plot.ly' not in page
    assert [h.all_text() for h in body.find_all("h2")][:2] == ["each seed: random init → pretrained", "retrieval R@k"]
    # protocol and configuration folded at the end
    details = body.find_all("details")
    assert [d.find_all("summary")[0].all_text() for d in details] == ["Protocol", "Configuration"]
    assert body.children[-1] is details[-1] and "linear SVM" in details[0].all_text()
    config_rows = {tuple(td.all_text() for td in tr.find_all("td")) for tr in details[1].find_all("tr")}
    assert ("pretrain.task", "speed-change-fine") in config_rows and ("seeds", "0, 1") in config_rows
    assert ("downstream.label_fraction", "0.1") in config_rows
    # results.json predating saved pretext curves: the page says what it left out
    assert "holds no pretext training curves" in text
    # report.md keeps the verdicts and the markdown table for the docs
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.index(sentences[1]) < md.index("| random init |")


def test_one_seed_report_and_pretext_curves(tmp_path):
    results = results_slice(1)
    results["pretext_curves"] = {"seed 0": [
        {"step": 10, "loss": 5.6, "pretext.speed_acc": 0.2, "pretext.loc_acc": 0.1, "moco.acc": 0.05},
        {"step": 20, "loss": 5.2, "pretext.speed_acc": 0.3, "pretext.loc_acc": 0.2, "moco.acc": 0.1}]}
    results["minutes"], results["device"] = 3.9, "cpu"
    markdown, page = qs.build_report(results)
    body = body_of(render_html(page))
    sentences = [p.all_text() for p in body.children[1].find_all("p")]
    assert all(s.endswith("of 1 seed).") for s in sentences)
    headings = [h.all_text() for h in body.find_all("h2")]
    assert "pretext training" in headings and "holds no pretext" not in body.all_text()
    assert "One seed (0; --seeds 3 gives mean ± std)" in body.children[2].all_text() and "Total time 3.9 min on cpu." in markdown
    paired = page.figures[0].figure
    assert {t.mode for t in paired.data} == {"markers"}  # plain points: one seed has no spread
    pretext = next(f.figure for f in page.figures if f.heading == "pretext training")
    assert pretext.layout.yaxis2.title.text == "accuracy (fraction correct)"


def test_config_table_flattens_nested_settings():
    table = config_table({"pretrain": {"task": "pace", "milestones": [], "task_options": {}}, "seeds": [0, 1],
                          "note": "a | b"})
    assert table.splitlines() == ["| setting | value |", "|---|---|", "| `pretrain.task` | pace |",
                                  "| `pretrain.milestones` | – |", "| `pretrain.task_options` | {} |",
                                  "| `seeds` | 0, 1 |", "| `note` | a \\| b |"]


@pytest.mark.parametrize("content, problem", [
    (None, "no such results file"),
    ("{not json", "not a readable JSON file"),
    ('{"protocol": {}, "results": {}}', "not a quickstart results file"),
    ('{"protocol": [], "runs": {"a": [{}], "b": [{}]}}', "not a quickstart results file"),
    ('{"protocol": {}, "runs": {"a": [{}], "b": []}}', "different or no seeds"),
    ('{"protocol": {}, "runs": {"a": [{"finetune": {}}], "b": [{}]}}', "run 'a' #0 lacks linear_probe"),
])
def test_report_from_a_bad_file_is_one_line_and_exit_2(tmp_path, capsys, content, problem):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    assert main(["quickstart", "--report-from", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and problem in err
    assert not (tmp_path / "out" / "report.html").exists()


def test_report_into_an_unwritable_place_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_slice(1)))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["quickstart", "--report-from", str(path), "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(blocker / "out") in err and "cannot write the report" in err
