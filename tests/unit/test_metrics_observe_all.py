from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from stream.metrics import observe_all

BUCKETS = (0.005, 0.01, 0.1, 1, 10)
values = st.lists(
    st.one_of(
        st.sampled_from([0.0, *BUCKETS, 10.000001]),
        st.floats(min_value=0, max_value=100, allow_nan=False),
    ),
    max_size=50,
)


def samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for metric in histogram.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }


@given(values)
def test_bulk_observe_exports_what_one_by_one_observes(observed: list[float]) -> None:
    one = Histogram("one", "", buckets=BUCKETS, registry=CollectorRegistry())
    bulk = Histogram("one", "", buckets=BUCKETS, registry=CollectorRegistry())
    for value in observed:
        one.observe(value)
    observe_all(bulk, observed)
    expected, got = samples(one), samples(bulk)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), key
