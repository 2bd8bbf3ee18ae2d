import time

from getok.provenance import Clock, fingerprint


def test_clock_reports_a_short_busy_step_as_nonzero_to_the_millisecond():
    with Clock() as c:
        t_end = time.perf_counter() + 0.05
        x = 0
        while time.perf_counter() < t_end:  # busy: CPU time, not sleep
            x += 1
    out = c.stop()
    assert 0.04 <= out["wall_s"] < 5
    assert out["cpu_s"] > 0  # at 0.1 s rounding, this step read as 0.0 (CI failure of stop 23)
    assert out["wall_s"] == round(out["wall_s"], 3)


def test_fingerprint_ignores_key_order_and_sees_values():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
