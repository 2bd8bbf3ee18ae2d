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


def test_clock_split_reads_on_and_prefix_names_the_keys_summaries_write():
    c = Clock()
    setup = c.split("setup_", digits=1)
    assert set(setup) == {"setup_wall_s", "setup_cpu_s"} and setup["setup_wall_s"] == round(setup["setup_wall_s"], 1)
    t_end = time.perf_counter() + 0.02
    while time.perf_counter() < t_end:
        pass
    total = c.stop("total_", digits=1)
    assert set(total) == {"total_wall_s", "total_cpu_s"}
    assert c.wall >= 0.02 and c.wall >= setup["setup_wall_s"] - 0.05  # the split did not stop the clock
    assert c.stop() == {"wall_s": round(c.wall, 3), "cpu_s": round(c.cpu, 3)}


def test_machine_names_the_cpu_and_the_vector_unit_torch_uses():
    import torch

    from getok.provenance import cpu_model, machine

    m = machine()
    assert m["cpus"] >= 1 and "cpu_model" in m
    assert cpu_model()["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
