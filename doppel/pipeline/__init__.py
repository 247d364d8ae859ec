"""Pipeline orchestration: the stages the demo (and later real sessions) run in order."""
