"""The scaling fit on synthetic points, and the size presets' parameters and FLOPs against a hand count."""

import numpy as np
import pytest

from configs.training_schema import available_presets, load_preset
from ray_jobs.study_fit import fit_power_law
from ray_jobs.study_report import fit_by_method, seed_means
from training.model_size import count_parameters, training_flops_per_token


def test_fit_recovers_the_exponent_of_noisy_power_law_points():
    rng = np.random.default_rng(3)
    n = np.repeat(np.geomspace(1e5, 1e9, 6), 3)  # 6 sizes x 3 seeds
    y = 2.0 * n ** -0.3 * np.exp(rng.normal(0, 0.05, n.size))
    fit = fit_power_law(n, y)
    assert fit.exponent == pytest.approx(-0.3, abs=0.03)
    assert fit.coefficient == pytest.approx(2.0, rel=0.5)
    low, high = fit.exponent_ci
    assert low < -0.3 < high and high - low < 0.1
    assert 0 < fit.exponent_se < 0.05 and fit.r_squared > 0.95 and fit.points == 18 and fit.dropped == 0
    assert fit.predict([1e6])[0] == pytest.approx(fit.coefficient * 1e6 ** fit.exponent)


def test_exact_points_give_the_exact_law_and_zero_uncertainty():
    x = [1e3, 1e4, 1e5]
    fit = fit_power_law(x, [5 * v ** 0.5 for v in x], bootstrap=200)
    assert fit.exponent == pytest.approx(0.5) and fit.coefficient == pytest.approx(5.0)
    assert fit.exponent_se == pytest.approx(0.0, abs=1e-9) and fit.exponent_ci == pytest.approx((0.5, 0.5))


def test_zero_scores_are_dropped_and_counted_and_one_size_cannot_be_fitted():
    fit = fit_power_law([1, 10, 100, 100], [0.1, 0.2, 0.0, 0.4], bootstrap=50)
    assert fit.points == 3 and fit.dropped == 1
    with pytest.raises(ValueError, match="two or more distinct x"):
        fit_power_law([10, 10, 20], [0.5, 0.6, 0.0])


def test_fit_per_method_and_seed_means_from_trial_rows():
    rows = [{"method": m, "student": s, "data_size": 100, "seed": seed, "parameters": p, "train_flops": 6.0 * p,
             "tokens_per_s": 1.0, "success_rate": (0.01 * p ** 0.25 if m == "ld" else 0.0) + 0.001 * seed}
            for m in ("ld", "kd") for s, p in (("a", 1e4), ("b", 1e6)) for seed in (0, 1)]
    fits = fit_by_method(rows, "success_rate", "parameters")
    assert fits["ld"].exponent == pytest.approx(0.25, abs=0.02)
    assert fits["kd"].exponent == pytest.approx(0.0, abs=1e-9)  # 0.001 for seed 1 only: flat
    means = {(m["method"], m["student"]): m for m in seed_means(rows, "success_rate")}
    assert means[("ld", "a")]["success_rate_mean"] == pytest.approx(0.01 * 10 + 0.0005)
    assert means[("ld", "a")]["seeds"] == 2 and means[("kd", "b")]["success_rate_std"] == pytest.approx(0.000707, abs=1e-5)


def test_tiny_preset_parameters_and_flops_by_hand():
    # tiny: 2 layers, hidden 128, MLP 384, 4 heads x 32, no GQA, tied embeddings; vocab 2048, context 512.
    d, ff, layers, vocab, seq = 128, 384, 2, 2048, 512
    attention = 4 * d * d  # q, k, v, o: 128x128 each
    mlp = 3 * d * ff  # gate, up, down
    per_layer = attention + mlp + 2 * d  # + two RMSNorm weight vectors
    total = vocab * d + layers * per_layer + d  # + final norm; lm_head tied to the embedding
    assert total == 262144 + 2 * (65536 + 147456 + 256) + 128 == 688768
    size = count_parameters(load_preset("tiny"), vocab)
    assert size.total == total and size.non_embedding == total - vocab * d
    matmul = layers * (attention + mlp) + vocab * d  # the tied head is a matmul; lookup and norms are not
    assert training_flops_per_token(load_preset("tiny"), vocab, seq) == 6 * matmul + 12 * layers * 4 * 32 * seq


def test_gqa_preset_by_hand():
    # 1b: hidden 2048, 32 query heads and 8 kv heads of 64, MLP 8192, 16 layers.
    d, kv = 2048, 8 * 64
    per_layer = d * d + 2 * d * kv + d * d + 3 * d * 8192 + 2 * d
    assert count_parameters(load_preset("1b"), 128256).total == 128256 * d + 16 * per_layer + d


def test_presets_form_a_family_from_cpu_to_a_billion():
    # (each preset's count against torch: tests/test_student_builder.py::test_every_preset_count_matches_torch)
    totals = {name: count_parameters(load_preset(name), 2048).total for name in available_presets()}
    ordered = sorted(totals, key=totals.get)
    assert ordered[:3] == ["nano", "tiny", "mini"] and ordered[-1] == "1b"
    assert totals["nano"] < 2e5 and 0.9e9 < totals["1b"] < 1.1e9
    assert all(totals[b] / totals[a] > 2.5 for a, b in zip(ordered, ordered[1:]))  # each step a real size up


def test_sizes_command_prints_every_preset_exactly():
    from launch.study_cli import sizes_table

    table = sizes_table(2048, 512)
    assert "| tiny | 2 | 128 | 4/4 | 688,768 |" in table
    assert table.index("| nano") < table.index("| tiny") < table.index("| mini") < table.index("| 1b")
