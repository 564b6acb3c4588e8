from steps_py.cli import cli

cli(prog_name="stnas")
