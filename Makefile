# The two commands of the README. Both set everything up on a fresh machine (scripts/setup.sh).
.PHONY: report test docs setup

# The main job: the analysis on the embedded model, writing a report directory.
report:
	scripts/report.sh

# The test command (also what CI runs): ruff, mypy, docs with warnings as errors, pytest.
test:
	scripts/test.sh

# The documentation alone, with the executed course notebooks -> docs/_build/html.
docs:
	scripts/docs.sh

setup:
	scripts/setup.sh
