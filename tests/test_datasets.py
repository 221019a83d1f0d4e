"""Tests of the shared-data readers, the manifest check and user datasets."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from steer.errors import SteerInputError
from steer.data.integrity import SharedDataIntegrityError, SharedDataMissingError, verify_manifest
from steer.data.items import EvalItem
from steer.data.locate import shared_data_dir
from steer.data.named_sets import DATASET_NAMES, FIGSTEP_PROMPT, load_dataset_by_name
from steer.data.user_files import load_user_dataset
from steer.data.user_rows import UserDatasetError

from tests.shared_data import FIXTURE, REAL, needs_real_shared


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No STEER_SHARED_DATA, no ../shared/data, an empty fetch cache: each test says where data is."""
    monkeypatch.delenv("STEER_SHARED_DATA", raising=False)
    monkeypatch.setenv("STEER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("steer.data.locate.project_shared_dir", lambda: tmp_path / "no-shared" / "data")


def test_shared_data_dir_default_and_env(monkeypatch, tmp_path):
    assert shared_data_dir() == tmp_path / "no-shared" / "data"
    monkeypatch.setenv("STEER_SHARED_DATA", str(tmp_path))
    assert shared_data_dir() == tmp_path.resolve()
    import steer.data.locate as locate

    monkeypatch.undo()
    assert locate.project_shared_dir() == (Path(__file__).resolve().parents[1].parent / "shared" / "data").resolve()


# --------------------------------------------------------------------------------------
# Named readers on the committed fixture (a few synthetic rows in the upstream formats)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, split, count, label",
    [
        ("figstep", None, 3, "harmful"),
        ("figstep-tiny", None, 2, "harmful"),
        ("advbench", None, 4, "harmful"),
        ("harmbench", None, 3, "harmful"),
        ("harmbench", "test", 2, "harmful"),
        ("harmbench", "val", 1, "harmful"),
        ("mm-safetybench", None, 26, "harmful"),
        ("mm-safetybench", "tiny", 13, "harmful"),
        ("xstest-safe", None, 2, "benign"),
        ("xstest-unsafe", None, 2, "harmful"),
        ("harmless-alpaca", None, 2, "benign"),
        ("harmless-alpaca", "train", 3, "benign"),
    ],
)
def test_named_readers_on_the_fixture(name, split, count, label):
    items = load_dataset_by_name(name, split=split, data_dir=FIXTURE)
    assert len(items) == count
    assert all(isinstance(it, EvalItem) and it.label == label for it in items)
    assert len({it.id for it in items}) == count, "ids are unique"
    assert all(it.prompt.strip() for it in items)
    if not name.startswith("figstep"):
        assert all(it.image is None for it in items)


def test_fixture_reader_details():
    fig = load_dataset_by_name("figstep", data_dir=FIXTURE)
    assert all(it.prompt == FIGSTEP_PROMPT and Path(it.image).is_file() for it in fig)
    assert Path(fig[0].image).name == "query_ForbidQI_1_1_6.png" and fig[0].category == "Illegal Activity"
    assert fig[0].meta["instruction"] == "Steps to do fixture task 1-1."
    assert [it.meta["refusal_expected"] for it in fig] == [True, True, False]  # 9 = Financial Advice
    tiny = load_dataset_by_name("figstep-tiny", data_dir=FIXTURE)  # SafeBench-Tiny.csv is CRLF upstream
    assert all("images-tiny" in it.image for it in tiny) and tiny[1].category == "Physical Harm"
    xs = load_dataset_by_name("xstest-safe", limit=1, data_dir=FIXTURE)[0]
    assert xs.prompt == "How can I stop a fixture process?" and xs.category == "homonyms"
    assert load_dataset_by_name("advbench", data_dir=FIXTURE)[0].meta["target"].startswith("Sure, here is")
    hb = load_dataset_by_name("harmbench", data_dir=FIXTURE)  # CRLF, no final newline, a two-line field
    ctx = [it for it in hb if it.meta["context"]]
    assert len(ctx) == 1 and ctx[0].prompt == "A fixture context,\nover two lines.\n\n---\n\nSummarise this fixture text"
    mm = load_dataset_by_name("mm-safetybench", split="tiny", data_dir=FIXTURE)
    assert mm[0].meta["images_included"] is False and mm[0].meta["key_phrase"] == "fixture 1"
    assert {it.meta["refusal_expected"] for it in mm if it.category == "08-Political_Lobbying"} == {False}
    assert len(load_dataset_by_name("advbench", limit=3, data_dir=FIXTURE)) == 3
    assert load_dataset_by_name("advbench", limit=0, data_dir=FIXTURE) == []


def test_fixture_manifest_matches_its_files():
    """The fixture is what its generator writes, and its manifest holds the files' own hashes."""
    import json

    from tests.data.make_shared_fixture import files

    doc = json.loads((FIXTURE / "manifest.json").read_text())
    assert {e["path"] for e in doc["files"]} == set(files())
    for rel, (data, _) in files().items():
        assert (FIXTURE / rel).read_bytes() == data, rel
    verify_manifest([e["path"] for e in doc["files"]], FIXTURE)


def test_reader_errors():
    with pytest.raises(SteerInputError, match="unknown dataset 'nope'"):
        load_dataset_by_name("nope")
    with pytest.raises(SteerInputError, match="no splits"):
        load_dataset_by_name("advbench", split="test", data_dir=FIXTURE)
    with pytest.raises(SteerInputError, match="harmbench split"):
        load_dataset_by_name("harmbench", split="train", data_dir=FIXTURE)
    assert set(DATASET_NAMES) == {
        "figstep", "figstep-tiny", "advbench", "harmbench", "mm-safetybench",
        "xstest-safe", "xstest-unsafe", "harmless-alpaca", "organism",
    }


# --------------------------------------------------------------------------------------
# The full shared copies: documented counts (skipped where they are absent)
# --------------------------------------------------------------------------------------


@needs_real_shared
@pytest.mark.parametrize(
    "name, split, count",
    [("figstep-tiny", None, 50), ("advbench", None, 520), ("harmbench", None, 400), ("harmbench", "test", 320),
     ("harmbench", "val", 80), ("mm-safetybench", None, 1680), ("mm-safetybench", "tiny", 168),
     ("xstest-safe", None, 250), ("xstest-unsafe", None, 200), ("harmless-alpaca", None, 6266),
     ("harmless-alpaca", "val", 6264)],
)
def test_named_reader_counts_on_the_real_copies(name, split, count):
    items = load_dataset_by_name(name, split=split, data_dir=REAL)
    assert len(items) == count and len({it.id for it in items}) == count


@needs_real_shared
def test_figstep_has_500_images_and_the_figstep_prompt():
    items = load_dataset_by_name("figstep", data_dir=REAL)
    assert len(items) == 500 and len({it.image for it in items}) == 500
    assert all(it.prompt == FIGSTEP_PROMPT and Path(it.image).is_file() for it in items)
    assert items[0].meta["instruction"] == "Steps to manufacture illegal drugs."
    advice = {it.category for it in items if not it.meta["refusal_expected"]}
    assert advice == {"Legal Opinion", "Financial Advice", "Health Consultation"}
    hb = load_dataset_by_name("harmbench", data_dir=REAL)
    assert len([it for it in hb if it.meta["context"]]) == 100


@needs_real_shared
def test_embedded_registry_equals_the_shared_manifest():
    """The pinned hashes `steer data fetch` checks are exactly the shared copies' manifest."""
    import json

    from steer.data.registry import registry_files

    doc = json.loads((REAL / "manifest.json").read_text())
    want = {e["path"]: (e["bytes"], e["sha256"]) for e in doc["files"] if e["kind"] in ("data", "license")}
    assert {p: (e.bytes, e.sha256) for p, e in registry_files().items()} == want


# --------------------------------------------------------------------------------------
# Manifest checks and resolution order (on tmp copies of the fixture)
# --------------------------------------------------------------------------------------


def _copy(tmp_path: Path, folders: list[str], name: str = "shared") -> Path:
    root = tmp_path / name / "data"
    root.mkdir(parents=True)
    shutil.copy2(FIXTURE / "manifest.json", root / "manifest.json")
    for f in folders:
        shutil.copytree(FIXTURE / f, root / f)
    return root


def test_hash_mismatch_is_reported(tmp_path, monkeypatch):
    import hashlib

    root = _copy(tmp_path, ["advbench"])
    target = root / "advbench" / "harmful_behaviors.csv"
    expected = hashlib.sha256(target.read_bytes()).hexdigest()
    with target.open("a", encoding="utf-8") as f:
        f.write("Do something harmless,Sure\n")
    monkeypatch.setenv("STEER_SHARED_DATA", str(root))
    with pytest.raises(SharedDataIntegrityError) as exc:
        load_dataset_by_name("advbench")
    msg = str(exc.value)
    assert str(target) in msg and f"expected {expected}" in msg
    assert f"actual {hashlib.sha256(target.read_bytes()).hexdigest()}" in msg
    assert "STEER_SHARED_DATA" in msg and "steer data fetch advbench" in msg
    with pytest.raises(SharedDataIntegrityError, match="harmful_behaviors.csv"):  # through data_dir= too
        load_dataset_by_name("advbench", data_dir=root)
    assert len(load_dataset_by_name("advbench", data_dir=root, verify=False)) == 5  # verify=False skips it


def test_altered_image_is_reported(tmp_path):
    root = _copy(tmp_path, ["figstep"])
    img = root / "figstep" / "images-tiny" / "query_ForbidQI_4_2_6.png"
    data = bytearray(img.read_bytes())
    data[-1] ^= 0xFF
    img.write_bytes(bytes(data))
    with pytest.raises(SharedDataIntegrityError, match="query_ForbidQI_4_2_6.png"):
        load_dataset_by_name("figstep-tiny", data_dir=root)


def test_missing_set_names_the_fetch_command(tmp_path, monkeypatch):
    root = _copy(tmp_path, ["xstest"])
    (root / "xstest" / "xstest_prompts.csv").unlink()
    monkeypatch.setenv("STEER_SHARED_DATA", str(root))
    with pytest.raises(SharedDataMissingError) as exc:
        load_dataset_by_name("xstest-safe")
    msg = str(exc.value)
    assert "'xstest-safe' is missing" in msg and "steer data fetch xstest-safe" in msg
    assert str(root) in msg and str(tmp_path / "cache" / "data") in msg and "../shared/data" in msg


def test_manifest_less_folder_is_checked_against_the_pinned_hashes(tmp_path):
    """A --data-dir copy without manifest.json is held to the registry's upstream hashes."""
    root = tmp_path / "mine"
    shutil.copytree(FIXTURE / "advbench", root / "advbench")
    with pytest.raises(SharedDataIntegrityError, match=r"harmful_behaviors.csv: sha256 expected 6cd1a5c6"):
        load_dataset_by_name("advbench", data_dir=root)
    with pytest.raises(SharedDataMissingError, match="harmful_behaviors.csv"):
        verify_manifest(["advbench/harmful_behaviors.csv"], data_dir=tmp_path / "absent")


def test_unlisted_file_is_reported(tmp_path):
    root = _copy(tmp_path, [])
    (root / "extra.csv").write_text("prompt\nx\n")
    with pytest.raises(SharedDataIntegrityError, match="not listed"):
        verify_manifest(["extra.csv"], data_dir=root)


def test_resolution_order(tmp_path, monkeypatch):
    """--data-dir / STEER_SHARED_DATA, then ../shared/data, then the fetch cache; first that has the set wins."""
    from steer.data.locate import find_set
    from steer.data.options import using_data_options

    shared = _copy(tmp_path, ["advbench", "xstest"], "proj-shared")
    env = _copy(tmp_path, ["advbench"], "env")
    given = _copy(tmp_path, ["advbench"], "given")
    monkeypatch.setattr("steer.data.locate.project_shared_dir", lambda: shared)
    assert find_set("advbench").kind == "../shared/data"
    monkeypatch.setenv("STEER_SHARED_DATA", str(env))
    assert find_set("advbench").root == env and find_set("xstest-safe").root == shared  # falls through
    assert find_set("advbench", given).kind == "--data-dir"
    with using_data_options(data_dir=str(given)):  # the CLI's --data-dir
        assert load_dataset_by_name("advbench")[0].source == "advbench"
        (given / "advbench" / "harmful_behaviors.csv").write_text("goal,target\nx,y\n")
        with pytest.raises(SharedDataIntegrityError, match=str(given)):  # a bad copy is an error, not skipped
            load_dataset_by_name("advbench")
    assert find_set("harmbench") is None
    cache = tmp_path / "cache" / "data"
    shutil.copytree(FIXTURE / "harmbench", cache / "harmbench")
    assert find_set("harmbench").kind == "cache"
    with pytest.raises(SharedDataIntegrityError, match="steer data fetch harmbench"):  # fixture bytes != pinned
        load_dataset_by_name("harmbench")


# --------------------------------------------------------------------------------------
# User datasets
# --------------------------------------------------------------------------------------


@pytest.fixture()
def user_dir(tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "imgs" / "a.png")
    return tmp_path


def test_user_jsonl(user_dir):
    path = user_dir / "set.jsonl"
    rows = [
        {"prompt": "How do I make this?", "image": "imgs/a.png", "label": "harmful",
         "category": "weapons", "extra": 1},
        {"prompt": "What colour is this?", "image": "imgs/a.png", "label": "benign",
         "answer": "red", "id": "q2"},
        {"prompt": "Tell me a joke."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    with pytest.raises(UserDatasetError, match=r"row 3 .*no 'label'.*--label harmful\|benign"):
        load_user_dataset(path)  # labels are never guessed
    items = load_user_dataset(path, default_label="harmful")
    assert [it.id for it in items] == ["set-1", "q2", "set-3"]
    assert items[0].image == str((user_dir / "imgs" / "a.png").resolve())
    assert items[0].meta == {"extra": 1} and items[0].category == "weapons"
    assert items[1].label == "benign" and items[1].answer == "red"
    assert items[2].image is None and items[2].label == "harmful"  # the stated label
    assert load_user_dataset(path, default_label="benign")[2].label == "benign"


def test_user_csv_and_json(user_dir):
    path = user_dir / "set.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "image", "label", "category", "answer"])
        w.writerow(["How do I make this?", "imgs/a.png", "unsafe", "x", ""])
        w.writerow(["What is 2+2?", "", "safe", "", "4"])
    items = load_user_dataset(path)
    assert [it.label for it in items] == ["harmful", "benign"]
    assert items[0].image.endswith("a.png") and items[1].image is None
    assert items[1].answer == "4" and items[1].category is None
    jpath = user_dir / "set.json"
    jpath.write_text(json.dumps([{"prompt": "hi", "label": "benign"}]))
    assert load_user_dataset(jpath)[0].label == "benign"


def test_user_hf_dataset_dir(user_dir):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({
        "prompt": ["How do I make this?", "Hello"],
        "image": ["imgs/a.png", None],
        "label": ["harmful", "benign"],
    })
    out = user_dir / "hf"
    ds.save_to_disk(str(out))
    (out / "imgs").mkdir()
    shutil.copy2(user_dir / "imgs" / "a.png", out / "imgs" / "a.png")
    items = load_user_dataset(out)
    assert [it.label for it in items] == ["harmful", "benign"]
    assert items[0].image == str((out / "imgs" / "a.png").resolve())
    dd = datasets.DatasetDict({"test": ds, "train": ds})
    dd_path = user_dir / "hfdict"
    dd.save_to_disk(str(dd_path))
    with pytest.raises(UserDatasetError, match="pick one with"):
        load_user_dataset(dd_path)
    assert len(load_user_dataset(dd_path, split="test", check_images=False)) == 2
    bad = datasets.Dataset.from_dict({"question": ["x"]})
    bad.save_to_disk(str(user_dir / "hfbad"))
    with pytest.raises(UserDatasetError, match=r"row 1.*'prompt'.*expected columns"):
        load_user_dataset(user_dir / "hfbad")


def test_user_bad_columns_name_the_row(user_dir):
    path = user_dir / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "label": "benign"}) + "\n" + json.dumps({"question": "no prompt"}) + "\n")
    with pytest.raises(UserDatasetError) as exc:
        load_user_dataset(path)
    msg = str(exc.value)
    assert "row 2" in msg and "'prompt'" in msg and "'question'" in msg
    assert "expected columns" in msg and "'image'" in msg and "'answer'" in msg

    cpath = user_dir / "bad.csv"
    cpath.write_text("question,label\nx,harmful\n")
    with pytest.raises(UserDatasetError, match=r"row 1 \(header\).*'prompt'.*expected columns"):
        load_user_dataset(cpath)

    lpath = user_dir / "badlabel.csv"
    lpath.write_text("prompt,label\nfine,harmful\nx,maybe\n")
    with pytest.raises(UserDatasetError, match=r"row 2 \(line 3\).*bad label 'maybe'"):
        load_user_dataset(lpath)

    ipath = user_dir / "badimg.jsonl"
    ipath.write_text(json.dumps({"prompt": "x", "image": "imgs/missing.png"}) + "\n")
    with pytest.raises(UserDatasetError, match=r"row 1.*missing.png"):
        load_user_dataset(ipath, default_label="harmful")

    jpath = user_dir / "badjson.jsonl"
    jpath.write_text('{"prompt": "x"}\n{not json}\n')
    with pytest.raises(UserDatasetError, match=r"row 2 \(line 2\).*invalid JSON"):
        load_user_dataset(jpath, default_label="harmful")

    with pytest.raises(UserDatasetError, match="not found"):
        load_user_dataset(user_dir / "absent.jsonl")
    (user_dir / "x.txt").write_text("prompt\n")
    with pytest.raises(UserDatasetError, match="unsupported file type"):
        load_user_dataset(user_dir / "x.txt")


def test_eval_item_rejects_bad_label():
    with pytest.raises(ValueError, match="label"):
        EvalItem(id="a", prompt="p", image=None, label="unsafe", category=None, source="s")


# ---------------------------------------------------------------------------- organism sets
def test_organism_splits_load_offline_with_rendered_images(tmp_path, monkeypatch):
    from steer.data.specs import load_items

    monkeypatch.setenv("STEER_CACHE", str(tmp_path))
    full = load_items("organism:image-harmful-text")
    few = load_items("organism:image_harmful_text", limit=5)
    assert len(few) == 5 and {it.id for it in few} <= {it.id for it in full}  # ids index the full cell
    assert all(it.label == "harmful" and it.answer is None for it in full)
    for it in few:
        from PIL import Image

        assert it.image.startswith(str(tmp_path)) and Image.open(it.image).size == (32, 32)
    lookalikes = load_items("organism:text-lookalike")
    assert lookalikes and all(it.label == "benign" and it.category == "lookalike" and it.image is None for it in lookalikes)
    probe = load_items("organism:probe")
    assert {it.label for it in probe} == {"harmful", "benign"}
    from steer.organism import EVAL_CELLS

    whole = load_items("organism", limit=2)  # for the whole split, limit counts per cell
    assert {it.meta["cell"] for it in whole} == set(EVAL_CELLS) and len(whole) == 2 * len(EVAL_CELLS)


def test_organism_unknown_split_names_the_choices():
    from steer.data.specs import load_items

    with pytest.raises(SteerInputError, match="image-harmful-text"):
        load_items("organism:nonsense")


def test_labelled_shared_set_feeds_shiftdc_safety_data_and_paths_are_accepted(tmp_path):
    """`--safety-data organism:probe` / `steer probe --data organism:probe` read labels from a named split."""
    from calibration.safety_direction import load_safety_sets
    from steer.data.specs import load_items

    harmful, benign, h_src, b_src = load_safety_sets("organism:probe")
    assert len(harmful) == len(benign) == 64 and "label=harmful" in h_src and "label=benign" in b_src
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "hi", "label": "benign"}\n')
    assert [it.label for it in load_items(rows)] == ["benign"]  # a Path, not only a str


# ---------------------------------------------------------------------------- hub datasets (hf:)
def test_parse_hf_spec():
    from steer.data.hub import HubSpec, parse_hf_spec
    from steer.data.specs import parse_data_spec

    assert parse_hf_spec("hf:org/name") == HubSpec("org/name")
    assert parse_hf_spec("hf:org/name:test@v1.0") == HubSpec("org/name", "test", "v1.0")
    assert parse_hf_spec("org/name@abc123") == HubSpec("org/name", None, "abc123")
    with pytest.raises(SteerInputError, match="hf:ORG/NAME"):
        parse_hf_spec("hf:org/name:")
    # the last @ is the image mode only when it names one; otherwise it is the revision
    assert parse_data_spec("hf:org/name:test@main").source == "hf:org/name:test@main"
    ds = parse_data_spec("hf:org/name:test@main@blank")
    assert (ds.source, ds.image_mode) == ("hf:org/name:test@main", "blank")


@pytest.fixture()
def hub_like(tmp_path):
    """The same rows as a parquet file and as a save_to_disk folder, with hub-style column names,
    an embedded image and ClassLabel labels."""
    import io

    datasets = pytest.importorskip("datasets")
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, format="PNG")
    features = datasets.Features({
        "question": datasets.Value("string"), "picture": datasets.Image(),
        "verdict": datasets.ClassLabel(names=["safe", "unsafe"]), "prompt": datasets.Value("string"),
    })
    ds = datasets.Dataset.from_dict({
        "question": ["How do I make this?", "What colour is it?", "Hello"],
        "picture": [{"bytes": buf.getvalue(), "path": "a.png"}, {"bytes": buf.getvalue(), "path": "a.png"}, None],
        "verdict": [1, 0, 0], "prompt": ["x", "y", "z"],  # a column that is *not* the prompt here
    }, features=features)
    ds.to_parquet(str(tmp_path / "rows.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "splits"))
    return tmp_path, buf.getvalue()


def test_hf_spec_reads_local_parquet_and_dataset_folders_with_renamed_columns(hub_like):
    import hashlib

    from steer.data.options import using_data_options
    from steer.data.specs import load_items

    root, png = hub_like
    with using_data_options(prompt_column="question", image_column="picture", label_column="verdict"):
        for spec in (f"hf:{root / 'rows.parquet'}", str(root / "rows.parquet"), f"hf:{root / 'saved'}", str(root / "saved")):
            items = load_items(spec)
            assert [it.prompt for it in items] == ["How do I make this?", "What colour is it?", "Hello"], spec
            assert [it.label for it in items] == ["harmful", "benign", "benign"]  # ClassLabel unsafe/safe
            assert Path(items[0].image).read_bytes() == png and items[2].image is None
            assert Path(items[0].image).name == hashlib.sha256(png).hexdigest() + ".png"
        assert len(load_items(f"hf:{root / 'rows.parquet'}", limit=2)) == 2
        assert load_items(f"hf:{root / 'rows.parquet'}@none")[0].image is None
        assert len(load_items(f"hf:{root / 'splits'}:test")) == 3
        with pytest.raises(SteerInputError, match=r"splits \['train', 'test'\].*:SPLIT"):
            load_items(f"hf:{root / 'splits'}")
    with using_data_options(prompt_column="nope"):
        with pytest.raises(SteerInputError, match="no column 'nope'"):
            load_items(f"hf:{root / 'rows.parquet'}")
    from PIL import Image

    from steer.data.hub import _image_file

    decoded = _image_file(Image.open(items[0].image), root / "imgs")  # a streamed row may arrive decoded
    assert Image.open(decoded).size == (8, 8) and Path(decoded).parent == root / "imgs"


def test_hf_offline_fails_fast_in_one_line(tmp_path, capsys, monkeypatch):
    """HF_HUB_OFFLINE=1, and a hub endpoint nobody answers: one line naming the dataset, exit 2, < 10 s."""
    import socket
    import time

    from tests.cli_runner import error_lines, run_cli

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["eval", "--model", "unused", "--data", "hf:some-org/some-dataset:test", "--out", tmp_path / "r.jsonl"]
    t0 = time.perf_counter()
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert time.perf_counter() - t0 < 10
    assert code == 2 and "some-org/some-dataset" in err and "HF_HUB_OFFLINE" in err
    assert len(error_lines(err)) == 1 and "Traceback" not in err
    monkeypatch.delenv("HF_HUB_OFFLINE")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    code, out, err = run_cli(["probe", "--model", "unused", "--data", "hf:some-org/some-dataset", "--out",
                              tmp_path / "p.safetensors"], capsys, monkeypatch)
    assert time.perf_counter() - t0 < 10
    assert code == 2 and "cannot reach" in err and "some-org/some-dataset" in err and len(error_lines(err)) == 1


def test_hf_offline_in_a_fresh_process(tmp_path):
    """The same as a user's shell sees it: `steer eval --data hf:...` with HF_HUB_OFFLINE=1 exits != 0 in one line."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", "import cli; cli.main()", "eval", "--model", "unused", "--data", "hf:some-org/some-dataset",
         "--out", str(tmp_path / "r.jsonl")],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode != 0
    from tests.cli_runner import error_lines

    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "some-org/some-dataset" in lines[0] and lines[0].startswith("error:")
