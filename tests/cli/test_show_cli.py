"""``stnas show``: the table (with or without the ``arch`` subcommand), the one-line summary,
a YAML config's value and the stage-times table, as run.sh prints them."""

import json

from click.testing import CliRunner

from steps_py.cli import cli


def show(*args):
    return CliRunner().invoke(cli, ["show", *map(str, args)])


def test_arch_table_and_summary(tmp_path):

    from pipeline.nas.arch import Arch
    from pipeline.nas.space import load_space

    arch = Arch.from_space(
        load_space("tiny"), ["tdnn_k3_d2", "tdnn_k5_d1", "identity", "tdnn_k3_d1"]
    )
    path = tmp_path / "arch.json"
    arch.to_json(path)
    data = tmp_path / "data"
    (data / "lang").mkdir(parents=True)
    (data / "lang" / "units.txt").write_text("".join(f"u{i} {i}\n" for i in range(7)))
    n = sum(p.numel() for p in arch.build(7).parameters())
    with_k41 = sum(p.numel() for p in arch.build(41).parameters())
    assert n != with_k41  # K matters, so the counts below show which K was read

    table = show(path, "--data-dir", data)  # no subcommand: the table, as before
    assert table.exit_code == 0, table.output
    assert f"{n:,} parameters (K=7)" in table.output and "linear → 7" in table.output
    assert show("arch", path, "--data-dir", data).output == table.output
    assert f"{with_k41:,} parameters (K=41)" in show(path, "--units", 41).output

    one = show("arch", path, "--data-dir", data, "--summary")
    assert one.exit_code == 0, one.output
    assert (
        one.output == f"k3d2 k5d1 | sub | identity k3d1  ({n / 1e6:.3f} M parameters "
        "with K=7 units)\n"
    )
    assert show("--units", 7, path, "--summary").output == one.output  # options first
    r = show("arch", path)  # K from nowhere
    assert r.exit_code == 1 and "--units" in r.output
    r = show("arch", tmp_path / "none.json")
    assert r.exit_code == 2 and "none.json" in r.output


def test_config_value(tmp_path):
    conf = tmp_path / "search.yaml"
    conf.write_text(
        "# a comment\nspace: tiny\nmax_epochs: 2\namp: false\nstrategy_conf:\n  arch_lr: 0.005\n"
    )
    for key, want in [
        ("space", "tiny"),
        ("max_epochs", "2"),
        ("amp", "false"),
        ("strategy_conf.arch_lr", "0.005"),
        ("strategy_conf", '{"arch_lr": 0.005}'),
    ]:
        r = show("config", conf, "--key", key)
        assert r.exit_code == 0 and r.output == want + "\n", (key, r.output)
    r = show("config", conf, "--key", "spce")
    assert r.exit_code == 1 and f"{conf}: no key 'spce'" in r.output and "space" in r.output
    r = show("config", conf, "--key", "space.name")
    assert r.exit_code == 1 and f"{conf}: no key 'space.name'" in r.output
    conf.write_text("space: [tiny\n")
    r = show("config", conf, "--key", "space")
    assert r.exit_code == 1 and f"{conf}: cannot read YAML" in r.output
    assert "Traceback" not in r.output


def test_stage_times(tmp_path):
    def stage(d, secs, when):
        d.mkdir(parents=True, exist_ok=True)
        (d / "stage.json").write_text(json.dumps({"wall_time_s": secs, "finished": when}))

    data, exp = tmp_path / "data", tmp_path / "exp"
    stage(data, 12.34, "2024-01-02 03:04:05")
    stage(exp / "warmup", 100.0, "w")
    stage(exp / "retrain", None, "r")  # no time recorded: 0.0
    stage(exp / "retrain" / "decode_test_tg", 3.04, "d")
    (exp / "retrain" / "log").mkdir()  # no stage.json: no row
    r = show("times", data, exp, tmp_path / "exp_tdnn_d")  # the last one does not exist
    assert r.exit_code == 0, r.output
    # in the order of the stage.json paths: .../retrain/decode_test_tg/ before .../retrain/
    names = [
        str(data),
        str(exp / "retrain" / "decode_test_tg"),
        str(exp / "retrain"),
        str(exp / "warmup"),
    ]
    w = max(map(len, names))
    assert r.output.splitlines() == [
        "stage times:",
        f"  {names[0]:<{w}}      12.3 s  (finished 2024-01-02 03:04:05)",
        f"  {names[1]:<{w}}       3.0 s  (finished d)",
        f"  {names[2]:<{w}}       0.0 s  (finished r)",
        f"  {names[3]:<{w}}     100.0 s  (finished w)",
    ]
    assert show("times", tmp_path / "nothing").output == ""
    (exp / "warmup" / "stage.json").write_text("{not json")
    r = show("times", exp)
    assert r.exit_code == 1 and str(exp / "warmup" / "stage.json") in r.output
