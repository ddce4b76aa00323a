from __future__ import annotations

import random

import pytest

from data_plane_agent.link.backoff import Backoff


def test_delays_grow_exponentially_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(0.5, 8.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(8.0, 0.5 * 2**i) for i in range(12)]
    assert all(0.25 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 8.0
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not lockstep


def test_reset_starts_over() -> None:
    backoff = Backoff(1.0, 30.0, rng=random.Random(1))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_fleet_spreads_out() -> None:
    """A thousand agents losing the link at once do not all retry at the same instant."""
    delays = sorted(Backoff(0.5, 30.0).next_delay() for _ in range(1000))
    assert delays[-1] - delays[0] > 0.2


@pytest.mark.parametrize(("initial", "maximum"), [(0, 1), (2, 1), (-1, 5)])
def test_invalid_configuration_is_refused(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial, maximum)
