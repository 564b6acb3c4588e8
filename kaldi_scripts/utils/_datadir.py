"""The Python behind kaldi_scripts/utils/*.sh (Kaldi's interfaces, stnas's data-dir code)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.data.datadir import combine_data_dirs, copy_data_dir, fix_data_dir, subset_by  # noqa: E402
from pipeline.data.validate import validate_data_dir  # noqa: E402
from pipeline.errors import StnasError  # noqa: E402


def main(argv):
    tool, args = argv[0], argv[1:]
    p = argparse.ArgumentParser(prog=f"{tool}.sh")
    if tool == "fix_data_dir":
        p.add_argument("dir")
        a = p.parse_args(args)
        r = fix_data_dir(a.dir)
        print(
            f"fix_data_dir.sh: kept {r['kept']} utterances, removed {r['removed']} "
            f"(old files in {a.dir}/.backup)"
        )
    elif tool == "subset_data_dir":
        g = p.add_mutually_exclusive_group()
        g.add_argument("--utt-list")
        g.add_argument("--spk-list")
        g.add_argument("--first", action="store_true")
        g.add_argument("--last", action="store_true")
        p.add_argument("src")
        p.add_argument("num", nargs="?", type=int)
        p.add_argument("dst")
        a = p.parse_args(args)
        if (a.utt_list or a.spk_list) and a.num is not None:
            p.error("--utt-list/--spk-list take no number")
        if not (a.utt_list or a.spk_list) and a.num is None:
            p.error("give the number of utterances")
        subset_by(
            a.src,
            a.dst,
            utt_list=a.utt_list,
            spk_list=a.spk_list,
            first=a.num if a.first else None,
            last=a.num if a.last else None,
            num=a.num if not (a.first or a.last) else None,
        )
    elif tool == "combine_data":
        p.add_argument("dst")
        p.add_argument("srcs", nargs="+")
        a = p.parse_args(args)
        combine_data_dirs(a.dst, a.srcs)
    elif tool == "copy_data_dir":
        for opt in ("--utt-prefix", "--utt-suffix", "--spk-prefix", "--spk-suffix"):
            p.add_argument(opt, default="")
        p.add_argument("src")
        p.add_argument("dst")
        a = p.parse_args(args)
        copy_data_dir(a.src, a.dst, a.utt_prefix, a.utt_suffix, a.spk_prefix, a.spk_suffix)
    else:
        sys.exit(f"_datadir.py: unknown tool {tool}")
    if tool != "fix_data_dir":
        out = Path(args[-1])
        c = validate_data_dir(out, check_audio=False, need_text=(out / "text").is_file())
        print(f"{tool}.sh: {out}: {c['utts']} utterances, {c['speakers']} speakers")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (StnasError, ValueError) as e:
        sys.exit(f"{sys.argv[1]}.sh: {e}")
