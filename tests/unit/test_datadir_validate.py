import shutil

import pytest

from pipeline.data.datadir import (
    c_sort_key,
    combine_data_dirs,
    read_map,
    subset_data_dir,
    write_data_dir,
)
from pipeline.data.validate import validate_data_dir
from pipeline.errors import DataError
from tests.conftest import make_kaldi_corpus


@pytest.fixture
def good(tmp_path):
    return make_kaldi_corpus(tmp_path / "c") / "train"


def test_good_dir_validates(good):
    assert validate_data_dir(good) == {"utts": 6, "speakers": 2, "recordings": 6}


def test_c_sort_order_is_byte_order():
    keys = ["b", "B", "a-1", "a_1", "a1", "A"]
    assert sorted(keys, key=c_sort_key) == ["A", "B", "a-1", "a1", "a_1", "b"]


def _rewrite(path, fn):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(fn(lines)))


@pytest.mark.parametrize(
    "name,mutate,pattern",
    [
        ("text", lambda lines: lines[::-1], r"text:2.*not sorted"),
        ("utt2spk", lambda lines: lines[:2] + [lines[1]] + lines[2:], r"utt2spk:3.*duplicate id"),
        (
            "text",
            lambda lines: [lines[0].split()[0] + "\n"] + lines[1:],
            r"text:1.*empty transcript",
        ),
        (
            "utt2spk",
            lambda lines: [lines[0].replace("trainspk0\n", "trainspk1\n")] + lines[1:],
            r"does not start with its speaker id",
        ),
        (
            "spk2utt",
            lambda lines: [lines[0].rsplit(" ", 1)[0] + "\n"] + lines[1:],
            r"spk2utt:1.*other utterances",
        ),
        ("wav.scp", lambda lines: lines[1:], r"is in utt2spk but not in wav.scp"),
        ("utt2spk", lambda lines: ["\n"] + lines, r"utt2spk:1.*empty line"),
    ],
)
def test_bad_files_name_file_and_line(good, name, mutate, pattern):
    _rewrite(good / name, mutate)
    with pytest.raises(DataError, match=pattern):
        validate_data_dir(good)


def test_missing_audio_named(good):
    first = read_map(good / "wav.scp")
    utt, path = next(iter(first.items()))
    shutil.move(path, path + ".gone")
    with pytest.raises(DataError, match=rf"wav.scp:1.*{utt}.*does not exist"):
        validate_data_dir(good)


def test_missing_required_file(good):
    (good / "text").unlink()
    with pytest.raises(DataError, match="required file text missing"):
        validate_data_dir(good)


def test_subset_and_combine(tmp_path, good):
    keep = ["trainspk0-001", "trainspk1-002"]
    sub = subset_data_dir(good, tmp_path / "sub", keep)
    assert list(read_map(sub / "utt2spk")) == keep
    assert read_map(sub / "spk2utt") == {"trainspk0": "trainspk0-001", "trainspk1": "trainspk1-002"}
    validate_data_dir(sub)
    other = write_data_dir(tmp_path / "o", {"zz-1": "/x.wav"}, {"zz-1": "HI"}, {"zz-1": "zz"})
    comb = combine_data_dirs(tmp_path / "comb", [sub, other])
    assert list(read_map(comb / "utt2spk")) == keep + ["zz-1"]
    with pytest.raises(DataError, match="more than one combined dir"):
        combine_data_dirs(tmp_path / "comb2", [sub, sub])
