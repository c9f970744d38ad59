# The two commands of the README. Both set everything up on a fresh machine (scripts/setup.sh).
.PHONY: report test setup

# The main job: the analysis on the embedded model, writing a report directory.
report:
	scripts/report.sh

# The test command (also what CI runs): ruff, mypy, docs with warnings as errors, pytest.
test:
	scripts/test.sh

setup:
	scripts/setup.sh
