"""Generated and mutated inputs for every reader of user files (Hypothesis), and the campaign
that runs them for minutes or hours (`python fuzz/campaign.py`).

Each `fuzz/target_*.py` defines `TARGETS: dict[str, Callable[[], None]]`, each value a
function decorated with Hypothesis' `@given(...)` only (no `@settings`), which raises on a
property violation; `campaign.py` applies the settings (examples or minutes, seed, the CI
profile) and counts the inputs tried. A module may also define `CI_EXAMPLES: dict[str, int]`,
fewer examples than the CI profile's default for a target whose every input builds a model,
and `SLOW: set[str]`, the targets whose test (tests/test_fuzz_targets.py) is marked `slow`
(each input loads TensorFlow models: seconds, not milliseconds).
"""
