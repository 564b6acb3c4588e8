"""The parts of a model package that need no trained model: the manifest, the descriptions,
and the command line the model card shows (tests/integration/test_package.py does the rest)."""

import json
import os
from pathlib import Path

import pytest

from pipeline.decode.package import DecodingSpec, FeatureSpec, PackageError, open_package
from pipeline.manifest import ManifestError, read_manifest, verify_files, write_manifest
from pipeline.stages.package import portable

FMT = "stnas-model-package"


def _dir(tmp_path):
    d = tmp_path / "pkg"
    d.mkdir()
    (d / "a.txt").write_text("alpha\n")
    (d / "b.bin").write_bytes(bytes(range(256)))
    write_manifest(d, ["a.txt", "b.bin"], FMT, 1)
    return d


def test_manifest_round_trip_and_refusals(tmp_path):
    d = _dir(tmp_path)
    files = read_manifest(d, FMT, 1)
    assert set(files) == {"a.txt", "b.bin"} and files["a.txt"]["bytes"] == 6
    verify_files(d, files)
    (d / "a.txt").write_text("alphA\n")  # same size, other content
    with pytest.raises(ManifestError, match=rf"{d / 'a.txt'}: refused: sha256 [0-9a-f]{{64}}"):
        verify_files(d, files)
    (d / "a.txt").write_text("alpha, longer\n")
    with pytest.raises(ManifestError, match=r"a.txt: refused: 14 bytes does not match the 6"):
        verify_files(d, files)
    (d / "a.txt").unlink()
    with pytest.raises(ManifestError, match=r"a.txt: missing, but listed in"):
        verify_files(d, files)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["files"].update({"../x": m["files"]["a.txt"]}), "not a plain file name"),
        (lambda m: m["files"].update({".hidden": m["files"]["a.txt"]}), "not a plain file name"),
        (lambda m: m.update(version=2), "newer than this stnas reads"),
        (lambda m: m.update(format="other"), "not a stnas-model-package manifest"),
        (lambda m: m["files"]["a.txt"].update(sha256="xyz"), "'a.txt' has no sha256"),
        (lambda m: m["files"]["a.txt"].update(bytes=True), "'a.txt' has no size"),
    ],
)
def test_a_manifest_names_only_files_of_its_directory(tmp_path, edit, message):
    d = _dir(tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    edit(m)
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ManifestError, match=message):
        read_manifest(d, FMT, 1)


def test_not_a_package(tmp_path):
    with pytest.raises(PackageError, match="manifest.json: missing"):
        open_package(tmp_path)
    d = _dir(tmp_path)
    with pytest.raises(PackageError, match="lists no model.safetensors, arch.json"):
        open_package(d)


def test_descriptions_round_trip(tmp_path):
    spec = FeatureSpec("/somewhere/conf/fbank_8k.conf", 8000, 120, delta_window=3)
    (tmp_path / "features.json").write_text(json.dumps(spec.to_dict()))
    back = FeatureSpec.from_file(tmp_path / "features.json")
    assert back.fbank_conf == str(tmp_path / "fbank.conf")  # the package's copy, by its name
    assert (back.sample_rate, back.delta_window, back.norm_vars) == (8000, 3, True)
    dec = DecodingSpec("tg", 0.7, -0.5, "dev", beam=15.0, max_active=5000)
    (tmp_path / "decoding.json").write_text(json.dumps(dec.to_dict()))
    assert DecodingSpec.from_file(tmp_path / "decoding.json") == dec
    (tmp_path / "decoding.json").write_text(json.dumps({**dec.to_dict(), "lm_weight": "0.7"}))
    with pytest.raises(PackageError, match="'lm_weight' must be a float"):
        DecodingSpec.from_file(tmp_path / "decoding.json")


def test_the_card_shows_no_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "exp" / "retrain" / "avg.pt"
    assert portable(str(inside)) == os.path.join("exp", "retrain", "avg.pt")
    assert portable("/elsewhere/deep/exp/retrain/avg.pt") == "…/retrain/avg.pt"
    assert portable("--out=/elsewhere/pkg/tts") == "--out=…/pkg/tts"
    assert portable("exp/retrain/avg.pt") == "exp/retrain/avg.pt"
    assert portable("0.5") == "0.5" and not Path(portable(str(inside))).is_absolute()
