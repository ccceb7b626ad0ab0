"""The leaderboard: verify rejects every tampering of a real result file, build renders, push/pull round-trip.

The committed files in leaderboard/results/ are real `spurbench run` outputs (planted benchmark);
every tampering test edits a copy of one of them.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from spurbench.errors import SpurbenchError
from spurbench.leaderboard.build import build_board
from spurbench.leaderboard.hub import pull_leaderboard, push_leaderboard
from spurbench.leaderboard.verify import VerificationError, verify_result
from spurbench.results import read_result
from tests.support.hub_server import LocalHub, local_hub
from tests.support.one_line import one_line_error

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "leaderboard" / "results").glob("planted__*.json"))  # the spurious-AUC results
COMMITTED_VIEWS = sorted((ROOT / "leaderboard" / "results").glob("planted-salient__*.json"))


@pytest.fixture(scope="module")
def originals() -> list[Path]:
    assert len(COMMITTED) >= 2, "leaderboard/results/ should hold the committed planted results"
    return COMMITTED


def _tampered(tmp_path: Path, edit) -> Path:
    raw = json.loads(COMMITTED[0].read_text())
    edit(raw)
    path = tmp_path / COMMITTED[0].name
    path.write_text(json.dumps(raw))
    return path


def test_committed_results_verify(originals):
    for path in originals:
        result = verify_result(path)
        assert result.benchmark.name == "planted" and {"plain", "spufix"} <= set(result.heads)


def _first_id(raw: dict, role: str) -> str:
    return next(i for i, r in raw["images"].items() if r["role"] == role)


def _drop_image(raw: dict) -> None:
    image_id = _first_id(raw, "negative")
    del raw["images"][image_id]
    for head in raw["heads"].values():
        del head["image_prob"][image_id]
        del head["image_top1"][image_id]


def _change_prob(raw: dict) -> None:
    image_id = _first_id(raw, "positive")
    prob = raw["heads"]["plain"]["image_prob"]
    prob[image_id] = 0.5 if prob[image_id] > 0.75 else 0.99


def _flip_top1(raw: dict) -> None:
    """Flip one top-1 flag that a softmax could have produced (p <= 1/2 flagged top-1, or 1/C <= p
    unflagged): only the recomputed prediction rates can tell it was changed."""
    head = raw["heads"]["plain"]
    floor = 1.0 / raw["model"]["num_classes"]
    image_id = next(
        i
        for i, top1 in head["image_top1"].items()
        if (top1 and head["image_prob"][i] <= 0.5) or (not top1 and head["image_prob"][i] >= floor)
    )
    head["image_top1"][image_id] = not head["image_top1"][image_id]


CASES = {
    "mauc": (
        lambda raw: raw["heads"]["plain"]["aggregate"].__setitem__("mauc", raw["heads"]["plain"]["aggregate"]["mauc"] + 0.01),
        "heads.plain.aggregate.mauc",
    ),
    "spufix mauc": (lambda raw: raw["heads"]["spufix"]["aggregate"].__setitem__("mauc", 0.99), "heads.spufix.aggregate.mauc"),
    "class auc": (
        lambda raw: raw["heads"]["plain"]["classes"][3].__setitem__("auc", raw["heads"]["plain"]["classes"][3]["auc"] - 0.001),
        "heads.plain.classes[3] (class 3).auc",
    ),
    "image probability": (_change_prob, "heads.plain.classes[0] (class 0)."),
    "dropped image": (_drop_image, "images: missing 1"),
    "wrong revision": (lambda raw: raw["benchmark"].__setitem__("revision", "generator-v1-seed7"), "benchmark.checksum"),
    "unknown revision": (lambda raw: raw["benchmark"].__setitem__("revision", "v0-nonsense"), "unknown revision 'v0-nonsense'"),
    "unknown benchmark": (lambda raw: raw["benchmark"].__setitem__("name", "imagenet-x"), "unknown benchmark 'imagenet-x'"),
    "schema version": (lambda raw: raw.__setitem__("schema_version", 1), "schema_version"),
    "pooled ap": (
        lambda raw: raw["heads"]["plain"]["aggregate"].__setitem__("pooled_ap", raw["heads"]["plain"]["aggregate"]["pooled_ap"] - 0.01),
        "heads.plain.aggregate.pooled_ap",
    ),
    "top-1 flag": (_flip_top1, "pred_rate"),
    "no plain head": (lambda raw: raw["heads"].pop("plain"), "heads: ['spufix']"),
    "unknown head": (lambda raw: raw["heads"].__setitem__("other", raw["heads"]["plain"]), "heads: ['other', 'plain', 'spufix']"),
    "spufix names an unclipped component": (
        lambda raw: raw.__setitem__(
            "spufix", {"source_model": "m", "fingerprint": "f", "clipped": {"3": [0]}, "component_names": {"3": {"1": "sky"}}}
        ),
        "spufix.component_names: class 3 names component 1, which the artifact does not clip",
    ),
    "spufix without its head": (
        lambda raw: (raw["heads"].pop("spufix"), raw.__setitem__("spufix", {"source_model": "m", "fingerprint": "f", "clipped": {}})),
        "spufix: the result records a SpuFix artifact but has no 'spufix' head",
    ),
    "unbounded bootstrap": (
        lambda raw: raw["heads"]["plain"]["aggregate"].__setitem__("bootstrap_draws", 10**8),
        "bootstrap_draws: 100000000",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_tampering_is_rejected_naming_file_and_field(tmp_path, case):
    edit, field = CASES[case]
    path = _tampered(tmp_path, edit)
    with pytest.raises(VerificationError) as exc:
        verify_result(path)
    message = str(exc.value)
    assert str(path) in message and field in message and "\n" not in message, message


def test_cli_verify_fails_in_one_line(tmp_path, cli):
    path = _tampered(tmp_path, CASES["mauc"][0])
    proc = cli("leaderboard", "verify", str(path), cwd=tmp_path)
    one_line_error(proc, str(path), "heads.plain.aggregate.mauc")
    ok = cli("leaderboard", "verify", str(COMMITTED[0]), cwd=tmp_path)
    assert ok.returncode == 0 and "1 result file(s) verified" in ok.stdout


def test_build_renders_markdown_csv_plots_and_an_offline_page(tmp_path, originals):
    results = tmp_path / "results"
    results.mkdir()
    for path in originals:
        shutil.copy(path, results)
    files = build_board(sorted(results.glob("*.json")), tmp_path / "site", model_lists_dir=ROOT / "model-lists")
    markdown = files.markdown.read_text()
    ranked = sorted((read_result(p) for p in originals), key=lambda r: -r.heads["plain"].aggregate.mauc)
    top, plain, fixed = ranked[0], ranked[0].heads["plain"].aggregate, ranked[0].heads["spufix"].aggregate
    display = {"planted:cnn": "Planted CNN", "planted:resnet": "Planted ResNet"}[top.model.name]
    expected = (
        f"| 1 | {display} (`{top.model.name}`) | planted | {plain.accuracy:.3f} | {plain.mauc:.3f} [{plain.mauc_ci_low:.3f}, {plain.mauc_ci_high:.3f}] "
        f"| {fixed.mauc:.3f} | {fixed.mauc - plain.mauc:+.3f} | {plain.mean_ap:.3f} | {fixed.mean_ap:.3f} | – | – | – | – |"
    )
    assert expected in markdown  # model-lists/planted.yaml has no paper numbers: no paper cells
    assert "Paper-reported only" in markdown and "| Rob. ResNet50 (`no adapter name`) |" in markdown  # unmapped models too
    rows = list(csv.DictReader(files.csv.open()))
    assert [r["model"] for r in rows if r["benchmark"] == "planted"] == [r.model.name for r in ranked]
    assert {r["input_size"] for r in rows} == {"40x40"} and {float(r["temperature"]) for r in rows} == {1.0}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in files.pngs)
    assert sorted(p.name for p in files.pngs) == [
        "examples-planted-0.png",
        "examples-planted-1.png",
        "examples-planted-2.png",
        "heatmap-planted.png",
        "scatter-planted.png",
    ]
    worst = sorted(ranked[0].heads["plain"].classes, key=lambda c: c.auc)[:3]  # the pictures show the worst classes' spurious images
    assert [f"{c.class_name}: spurious-only image" in markdown for c in worst] == [True] * 3
    page = files.html.read_text()
    # offline: nothing is fetched (no script, stylesheet, image or font from elsewhere)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and "@import" not in page
    assert page.count("<svg") >= 2 and "model-planted-planted_cnn" in page
    assert "other classes&#39; features: checker-square, striped-disc, dotted-ring" in page  # control classes' negatives, named


def test_views_sections_cross_table_and_pictures(tmp_path, originals):
    assert len(COMMITTED_VIEWS) == 2, "leaderboard/results/ should hold the committed planted-salient results"
    for path in COMMITTED_VIEWS:
        verify_result(path)
    results = tmp_path / "results"
    results.mkdir()
    for path in [*originals, COMMITTED_VIEWS[0]]:  # planted:resnet has no planted-salient result here
        shutil.copy(path, results)
    files = build_board(sorted(results.glob("*.json")), tmp_path / "site", board_dir=tmp_path, model_lists_dir=ROOT / "model-lists")
    markdown = files.markdown.read_text()
    view = read_result(COMMITTED_VIEWS[0])
    m = view.heads["plain"].metrics
    assert "## planted-salient (revision `generator-v1-seed0-carriers`, protocol `paper`)" in markdown
    expected = f"| 1 | Planted CNN (`planted:cnn`) | planted | {m['clean_accuracy']:.3f} | {m['core_accuracy']:.3f} | {m['spurious_accuracy']:.3f} | {m['gap']:+.3f} |"
    assert expected in markdown
    # across benchmarks: each benchmark's headline, "–" (never 0) where a model has no result
    auc = {read_result(p).model.name: read_result(p).heads["plain"].aggregate for p in originals}
    across = markdown[markdown.index("## Across benchmarks") :]
    a = auc["planted:cnn"]
    assert (
        f"| Planted CNN (`planted:cnn`) | planted | {a.mauc:.3f} [{a.mauc_ci_low:.3f}, {a.mauc_ci_high:.3f}] | {m['gap']:+.3f} |" in across
    )
    assert f"| Planted ResNet (`planted:resnet`) | planted | {auc['planted:resnet'].mauc:.3f} [" in across and across.split(
        "Planted ResNet"
    )[1].split("\n")[0].endswith("| – |")
    assert {p.name for p in files.pngs} >= {f"examples-planted-salient-{i}.png" for i in range(3)}
    worst = sorted(view.heads["plain"].classes, key=lambda c: c.metrics["gap"])[:3]  # the lowest core − spurious gap first
    assert [f"{c.class_name}: object mask (core, blue) and feature mask (spurious, red)" in markdown for c in worst] == [True] * 3
    page = files.html.read_text()
    assert page.count('src="data:image/png;base64,') == 6 and 'id="board-planted-salient"' in page and 'id="across"' in page


def test_build_ranks_like_with_like(tmp_path, originals):
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(originals[0], results / "a.json")
    raw = json.loads(originals[1].read_text())
    raw["protocol"]["name"] = "model"  # a valid result, but scored under the other preprocessing protocol
    (results / "b.json").write_text(json.dumps(raw))
    with pytest.raises(SpurbenchError, match="mix the revision/protocol"):
        build_board(sorted(results.glob("*.json")), tmp_path / "site", model_lists_dir=ROOT / "model-lists")
    assert not (tmp_path / "site").exists()
    raw["protocol"]["name"] = "paper"
    raw["protocol"]["description"] = "another geometry under the same name"  # e.g. a plugin that changed its paper protocol
    (results / "b.json").write_text(json.dumps(raw))
    with pytest.raises(SpurbenchError, match="mix the steps of protocol 'paper'"):
        build_board(sorted(results.glob("*.json")), tmp_path / "site", model_lists_dir=ROOT / "model-lists")
    shutil.copy(
        originals[0], results / "b.json"
    )  # the same model twice: one is shown (the newest, then the last name), and a note says which
    files = build_board(sorted(results.glob("*.json")), tmp_path / "site", model_lists_dir=ROOT / "model-lists")
    assert (
        len(files.notes) == 1
        and files.notes[0].startswith(f"planted:cnn on planted: 2 results; showing {results / 'b.json'} ")
        and files.notes[0].endswith(f"not {results / 'a.json'}")
    )
    assert [r["model"] for r in csv.DictReader(files.csv.open())] == ["planted:cnn"]


def test_build_refuses_a_tampered_result(tmp_path):
    path = _tampered(tmp_path, CASES["class auc"][0])
    with pytest.raises(VerificationError, match="auc"):
        build_board([path], tmp_path / "site", model_lists_dir=ROOT / "model-lists")
    assert not (tmp_path / "site" / "index.html").exists()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHub]:
    with local_hub(tmp_path, monkeypatch) as h:
        yield h


def test_push_then_pull_round_trip(hub, tmp_path, originals):
    results = tmp_path / "results"
    results.mkdir()
    for path in originals:
        shutil.copy(path, results)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html>board</html>")
    url = push_leaderboard("org/board", results, tmp_path / "site")
    stored = hub.files("org/board", "dataset")
    assert {f"results/{p.name}" for p in originals} <= set(stored) and "site/index.html" in stored and "README.md" in stored
    assert hub.commits("org/board", "dataset")[-1] in url
    pulled = pull_leaderboard("org/board", tmp_path / "pulled")
    assert [p.name for p in pulled] == [p.name for p in originals]
    assert all(p.read_bytes() == (results / p.name).read_bytes() for p in pulled)


def test_push_refuses_unverified_results_and_pull_refuses_tampered_ones(hub, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    _tampered(bad, CASES["mauc"][0])
    with pytest.raises(VerificationError):
        push_leaderboard("org/bad", bad)
    hub.add_commit("org/tampered", {f"results/{COMMITTED[0].name}": (bad / COMMITTED[0].name).read_bytes()}, "dataset")
    with pytest.raises(VerificationError):
        pull_leaderboard("org/tampered", tmp_path / "pulled")
    assert not (tmp_path / "pulled").exists() or not any((tmp_path / "pulled").iterdir())
