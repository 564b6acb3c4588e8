import pytest

from pipeline.data.audio import read_audio
from pipeline.data.datadir import read_map, write_data_dir
from pipeline.data.perturb import speed_perturb_data_dir
from pipeline.data.validate import validate_data_dir
from pipeline.lang.labels import ctc_min_frames, make_labels
from tests.conftest import make_kaldi_corpus


def test_speed_perturbation_ids_and_duration_ratio(tmp_path):
    train = make_kaldi_corpus(tmp_path / "c", n_spk=1, n_utt=2) / "train"
    sp = speed_perturb_data_dir(train, tmp_path / "train_sp")
    validate_data_dir(sp)
    u2s = read_map(sp / "utt2spk")
    assert sorted(u2s) == sorted(
        [
            "trainspk0-000",
            "trainspk0-001",
            "sp0.9-trainspk0-000",
            "sp0.9-trainspk0-001",
            "sp1.1-trainspk0-000",
            "sp1.1-trainspk0-001",
        ]
    )
    assert u2s["sp0.9-trainspk0-000"] == "sp0.9-trainspk0"
    assert read_map(sp / "utt2uniq")["sp1.1-trainspk0-001"] == "trainspk0-001"
    wav = read_map(sp / "wav.scp")
    n = {u: len(read_audio(wav[u], u)[1]) for u in wav}
    for base in ("trainspk0-000", "trainspk0-001"):
        assert read_audio(wav["sp0.9-" + base])[0] == 16000
        assert n["sp0.9-" + base] / n[base] == pytest.approx(1 / 0.9, rel=2e-3)
        assert n["sp1.1-" + base] / n[base] == pytest.approx(1 / 1.1, rel=2e-3)


def test_speed_perturbation_scales_segments(tmp_path):
    d = write_data_dir(
        tmp_path / "seg",
        {"rec1": "/a.wav"},
        {"rec1-u1": "HI THERE"},
        {"rec1-u1": "rec1"},
        segments={"rec1-u1": "rec1 0.90 1.80"},
    )
    sp = speed_perturb_data_dir(d, tmp_path / "sp")
    seg = read_map(sp / "segments")
    assert seg["sp0.9-rec1-u1"] == "sp0.9-rec1 1.000 2.000"
    assert "sp0.9-rec1" in read_map(sp / "wav.scp")


def test_ctc_min_frames():
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([1, 1, 2, 2, 2]) == 8
    assert ctc_min_frames([]) == 0


def _labels_dir(tmp_path, frames):
    text = {"s-1": "HELLO WORLD", "s-2": "HELLO ZORK", "s-3": "AA AA"}
    d = write_data_dir(tmp_path / "d", {u: "/x.wav" for u in text}, text, {u: "s" for u in text})
    (d / "utt2num_frames").write_text("".join(f"{u} {frames[u]}\n" for u in sorted(text)))
    return d


LEX = {"HELLO": [["HH", "AH", "L", "OW"]], "WORLD": [["W", "ER", "L", "D"]], "AA": [["AA"]]}
UNITS = {"<blk>": 0, "AA": 1, "AH": 2, "D": 3, "ER": 4, "HH": 5, "L": 6, "OW": 7, "W": 8, "SPN": 9}


def test_training_policy_drops_oov_and_too_short(tmp_path):
    # s-3 = AA AA needs 3 output frames (repeat → blank between): 8 frames // 3 = 2 < 3
    d = _labels_dir(tmp_path, {"s-1": 100, "s-2": 100, "s-3": 8})
    rep = make_labels(d, LEX, UNITS, training=True)
    assert read_map(d / "text_number") == {"s-1": "5 2 6 7 8 4 6 3"}
    assert rep.dropped == {"s-2": "oov-word", "s-3": rep.dropped["s-3"]}
    assert rep.dropped["s-3"].startswith("too-short")
    assert rep.oov_words == 1 and rep.oov_types["ZORK"] == 1
    assert list(read_map(d / "utt2spk")) == ["s-1"]
    assert "s-2 oov-word" in (d / "dropped_utts.txt").read_text()


def test_eval_policy_keeps_everything_and_unk_maps(tmp_path):
    d = _labels_dir(tmp_path, {"s-1": 100, "s-2": 100, "s-3": 9})
    rep = make_labels(d, LEX, UNITS, training=False)
    assert not rep.dropped and len(read_map(d / "utt2spk")) == 3
    assert read_map(d / "text_number")["s-2"] == "5 2 6 7"  # OOV left out of the labels
    lex = dict(LEX, **{"<UNK>": [["SPN"]]})
    make_labels(d, lex, UNITS, training=True)
    assert read_map(d / "text_number")["s-2"] == "5 2 6 7 9"
