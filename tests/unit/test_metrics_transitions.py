from collections import Counter

from stream.metrics import SEGMENT_TRANSITIONS, count_transitions


def _value(before: str, after: str) -> float:
    return SEGMENT_TRANSITIONS.labels(before, after)._value.get()


def test_a_tally_of_transitions_adds_each_count_to_its_series() -> None:
    start = {k: _value(*k) for k in [("loyal", "at_risk"), ("none", "new"), ("new", "none")]}
    count_transitions(Counter({("loyal", "at_risk"): 3, (None, "new"): 2, ("new", None): 1}))
    count_transitions(Counter({("loyal", "at_risk"): 1}))
    assert _value("loyal", "at_risk") - start[("loyal", "at_risk")] == 4
    assert _value("none", "new") - start[("none", "new")] == 2
    assert _value("new", "none") - start[("new", "none")] == 1
