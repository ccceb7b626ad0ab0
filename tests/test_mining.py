"""`spurbench mine` on the tiny model: candidates ranked by the saved basis's alpha (the definition),
the predicted-class filter, near-duplicates dropped, unreadable pool files skipped and named, digests
of the files, a second mining of the same pool without a forward pass, and every bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spurbench.discovery.index import class_basis, read_index
from spurbench.discovery.pipeline import discover
from spurbench.errors import SpurbenchError
from spurbench.features import extract_features
from spurbench.mining.index import INDEX_FILE, read_mining
from spurbench.mining.pipeline import mine
from spurbench.mining.pool import folder_pool
from spurbench.settings import DiscoverySettings, FeatureSettings, MiningSettings
from spurbench.testing import TinyAdapter, tiny_benchmark

SETTINGS = FeatureSettings(batch_size=4, progress=False)


def _mining(discovery: Path, table: dict[int, list[int]], out: Path, pool: Path | str, **values) -> MiningSettings:
    """Mining ``pool`` into ``out`` by the tiny model's discovery, for the components of ``table`` (written
    as the components file `spurbench label export` writes, beside ``out``)."""
    listed = out.with_name(f"{out.name}-components.json")
    listed.write_text(json.dumps({"components": {str(k): ranks for k, ranks in table.items()}}))
    return MiningSettings(model="tiny:net", discovery=discovery, components=listed, pool=pool, out=out, features=SETTINGS, **values)


@pytest.fixture(scope="module")
def discovery(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("discovery")
    train = tiny_benchmark(per_role=10)
    train.name = "tiny-train"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPURBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        settings = DiscoverySettings(
            model="tiny:net",
            benchmark="tiny",
            out=out,
            classes=[0, 1, 2],
            components_per_class=3,
            top_images=2,
            npfv_steps=2,
            features=SETTINGS,
        )
        discover(settings, model=TinyAdapter(), train=train)
    return out


@pytest.fixture
def pool(tmp_path) -> Path:
    """40 images of another tiny benchmark in two sub-folders, one exact duplicate, one broken file."""
    folder = tmp_path / "pool"
    source = tiny_benchmark(per_role=5, name="pool-source")
    for i, image in enumerate(source.images):
        target = folder / f"part{i % 2}" / f"{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.open().save(target)
    shutil.copy(folder / "part0" / "0.png", folder / "part1" / "copy-of-0.png")
    (folder / "part1" / "broken.jpg").write_bytes(b"not an image")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "x.png").write_bytes(b"ignored")
    return folder


def _expected(model, discovery: Path, pool_dir: Path, k: int, rank: int):
    bench = folder_pool(pool_dir).benchmark
    feats = extract_features(model, bench, settings=SETTINGS)
    alphas = class_basis(discovery, read_index(discovery), k).alphas(feats.features)[:, rank]
    logits = feats.features.double() @ model.head[0].double().T + model.head[1].double()
    return feats, alphas, logits


def test_candidates_follow_alpha_and_the_filters(discovery, pool, tmp_path) -> None:
    model = TinyAdapter()
    found = folder_pool(pool)
    assert found.unreadable == ["part1/broken.jpg"] and len(found.benchmark.images) == 41
    # the tiny model's 8 features are all alike (cosine > 0.98), so only exact copies count as duplicates here
    index = mine(
        _mining(discovery, {1: [0, 2]}, tmp_path / "m", pool, per_component=10, require_predicted="none", dedup_cosine=1 - 1e-6),
        model=model,
        pool=found,
    )
    assert read_mining(tmp_path / "m") == index and index.pool.unreadable == ["part1/broken.jpg"]
    feats, alphas, logits = _expected(model, discovery, pool, 1, 0)
    entry = next(e for e in index.components if (e.class_index, e.component) == (1, 0))
    order = [feats.image_ids[int(i)] for i in torch.argsort(alphas, descending=True)]
    # the exact copy of part0/0.png is dropped as a near-duplicate of whichever of the two ranks higher
    twins = {"part0/0.png", "part1/copy-of-0.png"}
    expected = [i for i in order if i not in twins or i == next(t for t in order if t in twins)][:10]
    assert [c.image_id for c in entry.candidates] == expected and [c.rank for c in entry.candidates] == list(range(1, 11))
    assert entry.dropped_duplicates == (1 if twins <= set(order[: order.index(expected[-1]) + 1]) else 0)
    for c in entry.candidates:
        row = feats.image_ids.index(c.image_id)
        assert c.alpha == pytest.approx(float(alphas[row]), abs=1e-9) and c.predicted == int(logits[row].argmax())
        assert c.probability == pytest.approx(float(torch.softmax(logits[row], 0)[1]), abs=1e-9)
        assert c.digest == "sha256:" + hashlib.sha256((pool / c.image_id).read_bytes()).hexdigest()
        with Image.open(tmp_path / "m" / c.thumbnail) as thumb:
            assert thumb.size == (16, 16)
    assert [Path(r).name for r in entry.reference] == [
        Path(t.file).name for t in read_index(discovery).classes["1"].components[0].top_images
    ]
    assert all((tmp_path / "m" / r).is_file() for r in [*entry.reference, entry.npfv])

    for rule, allowed in (("top1", 1), ("top5", 4)):  # (the tiny model has 4 classes: top-5 keeps every image)
        mined = mine(
            _mining(discovery, {1: [0]}, tmp_path / rule, pool, per_component=40, require_predicted=rule, dedup_cosine=1 - 1e-6),
            model=model,
            pool=found,
        )
        kept = {c.image_id for c in mined.components[0].candidates}
        passing = {i for r, i in enumerate(feats.image_ids) if 1 in logits[r].topk(allowed).indices.tolist()}
        assert kept and kept <= passing and len(kept) >= len(passing) - 1, rule  # all that pass, less at most the duplicate


def test_near_duplicates_go_by_cosine() -> None:
    from spurbench.mining.pipeline import _deduplicate

    feats = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.99, 0.141]), "c": torch.tensor([0.0, 1.0]), "d": torch.tensor([2.0, 0.0])}
    # cos(a, b) = 0.990, cos(a, d) = 1: with 0.98, b and d go; with 0.995 only d
    assert _deduplicate(["a", "b", "c", "d"], feats, 0.98, 10) == (["a", "c"], 2)
    assert _deduplicate(["a", "b", "c", "d"], feats, 0.995, 10) == (["a", "b", "c"], 1)
    assert _deduplicate(["a", "b", "c", "d"], feats, 0.995, 2) == (["a", "b"], 0)  # stops once it has enough


def test_mining_again_with_other_components_forwards_nothing(discovery, pool, tmp_path) -> None:
    model, found = TinyAdapter(), folder_pool(pool)
    mine(_mining(discovery, {1: [0]}, tmp_path / "a", pool), model=model, pool=found)
    before = model.forward_calls
    mine(_mining(discovery, {0: [1], 2: [0, 1]}, tmp_path / "b", pool, require_predicted="none"), model=model, pool=found)
    assert model.forward_calls == before
    assert json.loads((tmp_path / "b" / INDEX_FILE).read_text())["format"] == 1


@pytest.mark.parametrize(
    "components, needle",
    [
        ({7: [0]}, "class 7 is not a class of tiny:net"),
        ({3: [0]}, "class 3 is not in the discovery"),
        ({1: [5]}, "class 1 has no discovered component 5"),
    ],
)
def test_bad_components_are_one_line(discovery, pool, tmp_path, components, needle) -> None:
    with pytest.raises(SpurbenchError, match=needle):
        mine(_mining(discovery, components, tmp_path / "m", pool))
    assert not (tmp_path / "m" / INDEX_FILE).exists()


def test_bad_pools_and_models(discovery, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpurbenchError, match="no images"):
        folder_pool(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"no")
    with pytest.raises(SpurbenchError, match="none of its 1 image files can be read"):
        folder_pool(tmp_path / "junk")
    with pytest.raises(SpurbenchError, match="not a folder"):
        folder_pool(tmp_path / "nowhere")
    (tmp_path / "one").mkdir()
    tiny_benchmark(per_role=1).images[0].open().save(tmp_path / "one" / "a.png")
    other = TinyAdapter("other")
    other.card = other.card.model_copy(update={"weights_revision": "seed1"})
    with pytest.raises(SpurbenchError, match=r"a discovery of tiny:net \(seed0\), not of tiny:other \(seed1\)"):
        mine(_mining(discovery, {1: [0]}, tmp_path / "m", tmp_path / "one"), model=other)
    with pytest.raises(SpurbenchError, match="--per-component must be at least 1"):
        _mining(discovery, {1: [0]}, tmp_path / "m", tmp_path / "one", per_component=0)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--require-predicted", "top3"], "--require-predicted 'top3': expected one of top1, top5, none"),
        (["--components", "nothing.json"], "nothing.json: cannot read components file"),
        (["--pool", "empty"], "--pool empty: no images"),
        (["--pool", "nowhere"], "--pool nowhere: not a folder"),
        (["--pool", "spurious-imagenet"], "generates no mining pool; pass --pool DIR"),
    ],
)
def test_bad_mine_input_is_one_line(cli, discovery, tmp_path, args, needle) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "c.json").write_text('{"components": {"1": [0]}}')
    # the discovery is read (and checked against --model) before the pool: give one that passes
    shutil.copytree(discovery, tmp_path / "d")
    index = json.loads((tmp_path / "d" / "discovery.json").read_text())
    index["model"].update(name="planted:cnn", family="planted")
    (tmp_path / "d" / "discovery.json").write_text(json.dumps(index))
    options = {"--components": "c.json", "--pool": "empty", "--discovery": "d", **dict(zip(args[::2], args[1::2]))}
    proc = cli("mine", "-m", "planted:cnn", "--out", "m", *[x for pair in options.items() for x in pair], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "m").exists()


def test_hub_pools_files_and_parquet_rows(discovery, tmp_path, monkeypatch) -> None:
    """--pool hf://ORG/NAME: a Hub dataset (here a Hub-cache layout, HF_HUB_OFFLINE=1: the same code
    path a download ends in) of image files, or of parquet shards with an image column."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from spurbench.mining.pool import resolve_pool
    from tests.support.hub_fixture import offline_hub, write_hub_repo

    hf_home = offline_hub(tmp_path, monkeypatch)
    pngs = []
    for image in tiny_benchmark(per_role=3, name="hub-pool").images:
        buffer = io.BytesIO()
        image.open().save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    sha = write_hub_repo(
        hf_home, "org/pool-files", {f"images/{i}.png": b for i, b in enumerate(pngs)} | {"README.md": b"a pool"}, repo_type="dataset"
    )
    files = resolve_pool("hf://org/pool-files")
    assert len(files.benchmark.images) == len(pngs) and files.benchmark.revision == sha and files.source == "hf://org/pool-files"
    shard = io.BytesIO()
    rows = [{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(pngs)] + [{"bytes": b"broken", "path": "x.png"}]
    pq.write_table(pa.table({"image": rows}), shard)
    sha = write_hub_repo(hf_home, "org/pool-rows", {"data/train-00000-of-00001.parquet": shard.getvalue()}, repo_type="dataset")
    rows_pool = resolve_pool(f"hf://org/pool-rows@{sha}")
    assert [im.image_id for im in rows_pool.benchmark.images][:2] == [
        "data/train-00000-of-00001.parquet/0",
        "data/train-00000-of-00001.parquet/1",
    ]
    assert rows_pool.unreadable == [f"data/train-00000-of-00001.parquet/{len(pngs)}"] and rows_pool.benchmark.revision == sha
    settings = _mining(
        discovery, {1: [0]}, tmp_path / "m", f"hf://org/pool-rows@{sha}", per_component=5, require_predicted="none", dedup_cosine=1 - 1e-6
    )
    index = mine(settings, model=TinyAdapter(), pool=rows_pool)
    assert len(index.components[0].candidates) == 5 and all(c.digest.startswith("rgb-sha256:") for c in index.components[0].candidates)
    from spurbench.mining.verdicts import export_benchmark, record_verdict

    for c in index.components[0].candidates:
        record_verdict(tmp_path / "m", 1, c.image_id, "absent", "alice")
    export_benchmark(tmp_path / "m", tmp_path / "bench", name="from-rows")  # reopens the Hub pool for the rows' pixels
    card = json.loads((tmp_path / "bench" / "spurbench.json").read_text())
    assert card["num_images"] == 5 and len(list((tmp_path / "bench" / "images").rglob("*.png"))) == 5
    with pytest.raises(SpurbenchError, match="org/missing"):
        resolve_pool("hf://org/missing")


def test_a_second_scan_only_stats_unchanged_files(pool, monkeypatch) -> None:
    from spurbench.mining import pool as pool_module

    first = folder_pool(pool)
    checks = []
    real = pool_module._readable
    monkeypatch.setattr(pool_module, "_readable", lambda path: checks.append(path) or real(path))
    again = folder_pool(pool)
    assert checks == [] and again.unreadable == first.unreadable and again.benchmark.revision == first.benchmark.revision
    (pool / "part0" / "0.png").write_bytes(b"now broken")  # rewritten: checked again, and the revision moves
    third = folder_pool(pool)
    assert (
        checks == [pool / "part0" / "0.png"] and "part0/0.png" in third.unreadable and third.benchmark.revision != first.benchmark.revision
    )


def test_mining_from_a_spufix_artifact_ranks_by_what_spufix_clips(pool, tmp_path) -> None:
    """--spufix ART: the artifact's directions (not refitted); alpha_l is the contribution SpuFixHead
    clips, for the source's own eigenvectors and for matched (non-orthogonal) directions alike."""
    from spurbench.mining.sources import from_artifact
    from spurbench.spufix.fit import fit_source, fit_transfer, self_artifact

    model, train = TinyAdapter(), tiny_benchmark(per_role=10)
    alphas, npcas = fit_source(model, train, {1: [0, 2]}, settings=SETTINGS)
    other = TinyAdapter("other")
    torch.manual_seed(3)
    other.backbone[0].weight.data += 0.3 * torch.randn_like(other.backbone[0].weight)
    for artifact in (self_artifact(model, npcas, alphas), fit_transfer(other, train, alphas, settings=SETTINGS)):
        target = model if artifact.target_model == model.name else other
        source = from_artifact(artifact, "art", None, target)
        assert source.wanted() == {1: [0, 2]} and source.discovery is None and source.references == {}
        feats = extract_features(target, folder_pool(pool).benchmark, settings=SETTINGS).features
        head = artifact.head(*target.head)
        clipped = (
            head.scales * (torch.nn.functional.linear(feats.double(), head.rows.double()) + head.offsets)
        ).double()  # before the relu
        assert torch.allclose(source.bases[1].alphas(feats), clipped, atol=1e-5), (source.bases[1].alphas(feats) - clipped).abs().max()
        settings = MiningSettings(
            model=target.name,
            spufix="art",
            pool=pool,
            out=tmp_path / artifact.target_model.replace(":", "-"),
            per_component=5,
            require_predicted="none",
            dedup_cosine=1 - 1e-6,
            features=SETTINGS,
        )
        index = mine(settings, model=target, source=source)
        entry = next(e for e in index.components if e.component == 2)
        order = torch.argsort(clipped[:, 1], descending=True)
        ids = extract_features(target, folder_pool(pool).benchmark, settings=SETTINGS).image_ids
        assert (
            [c.image_id for c in entry.candidates] == [ids[int(i)] for i in order[:5]] and index.spufix == "art" and entry.reference == []
        )
    with pytest.raises(SpurbenchError, match="a SpuFix artifact for tiny:net .*, not for tiny:other"):
        from_artifact(self_artifact(model, npcas, alphas), "art", None, other)
    with pytest.raises(SpurbenchError, match=r"class 1 component 1 is not in the SpuFix artifact \(it has \[0, 2\]\)"):
        from_artifact(self_artifact(model, npcas, alphas), "art", {1: [1]}, model)


def test_help_keeps_its_square_brackets(cli, tmp_path) -> None:
    """rich markup would eat `[ranks]` and `[@REV]` as tags: the help texts escape them."""
    for args, needle in (
        (["mine", "run", "--help"], "hf://ORG/NAME[@REVISION]"),
        (["mine", "run", "--help"], "{class: [ranks]}"),
        (["spufix", "fit", "--help"], "{class: [component ranks]}"),
        (["run", "--help"], "hf://ORG/NAME[@REV]"),
    ):
        proc = cli(*args, cwd=tmp_path, env={"COLUMNS": "250"})
        assert proc.returncode == 0 and needle in proc.stdout, (args, needle)


def test_thumbnails_copy_small_web_images_and_shrink_the_rest(tmp_path) -> None:
    from spurbench.benchmarks.base import BenchmarkImage
    from spurbench.mining.pool import Pool
    from spurbench.mining.thumbnails import THUMBNAIL, thumbnail_and_digest

    rng = np.random.default_rng(0)
    files = {
        "small.png": Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)),
        "large.jpg": Image.fromarray(rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)),
        "gray.bmp": Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)),
    }
    for name, image in files.items():  # (the PNG at another compression than PIL's default, so a re-encoding would differ)
        image.save(tmp_path / name, **({"compress_level": 1} if name.endswith(".png") else {}))
    pool = Pool(None, "x", {name: tmp_path / name for name in files})  # type: ignore[arg-type]
    out = tmp_path / "out"
    (out / "thumbs").mkdir(parents=True)
    results = {
        name: thumbnail_and_digest(pool, BenchmarkImage(name, -1, "negative", None, name, lambda n=name: Image.open(tmp_path / n)), out)
        for name in files
    }
    for name, (_thumb, digest) in results.items():
        assert digest == "sha256:" + hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    assert (out / results["small.png"][0]).read_bytes() == (tmp_path / "small.png").read_bytes()  # the file itself
    with Image.open(out / results["large.jpg"][0]) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == THUMBNAIL and thumb.size[1] == round(300 * THUMBNAIL / 500)
    with Image.open(out / results["gray.bmp"][0]) as thumb:  # not a web format: re-encoded as PNG, pixels kept
        assert thumb.format == "PNG" and np.array_equal(np.asarray(thumb.convert("L")), np.asarray(files["gray.bmp"]))
