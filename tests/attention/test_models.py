"""Attention models: symmetries, ridge closed form vs SGD, the exact nearest-key construction."""

from __future__ import annotations

import pytest
import torch

import zoo
from tests.common import quiet_trainer
from zoo.attention import LowRankAttention, RFAttention, error_columns, error_statistics
from zoo.attention import targets as T
from zoo.attention.ridge import ridge_objective, ridge_path, ridge_solve
from zoo.core.evaluation import bootstrap, fold


def sphere(n: int, n_set: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_set, d, generator=g)
    return x / x.norm(dim=-1, keepdim=True)


def permute_keys(x: torch.Tensor, seed: int = 1) -> torch.Tensor:
    perm = torch.randperm(x.shape[1] - 1, generator=torch.Generator().manual_seed(seed)) + 1
    return torch.cat([x[:, :1], x[:, perm]], dim=1)


# ----------------------------------------------------------------------------- symmetries
@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("rf_attention", {"w_mean": 1.0}),
        ("lowrank_attention", {"dim": 8, "heads": 2}),
        ("lowrank_attention", {"dim": 8, "heads": 2, "layers": 2}),
    ],
)
def test_invariant_under_key_permutations(name: str, kw: dict) -> None:
    torch.manual_seed(0)
    m = zoo.create(name, **kw)
    if isinstance(m, RFAttention):
        torch.nn.init.normal_(m.readout)
    x = sphere(32, 9, 8)
    torch.testing.assert_close(m(permute_keys(x)), m(x), rtol=1e-5, atol=1e-6)
    assert (m(x[:, [1, 0, *range(2, 9)]]) - m(x)).abs().max() > 1e-3  # query ≠ key


def test_rf_mlp_is_not_key_invariant() -> None:
    m = zoo.create("rf_mlp")
    torch.nn.init.normal_(m.readout)
    x = sphere(32, 9, 8)
    assert (m(permute_keys(x)) - m(x)).abs().max() > 1e-3


def test_rf_attention_without_value_bias_is_odd() -> None:
    """f(−x) = −f(x): why value_bias is needed to fit functions of ⟨x₀, x_i⟩."""
    m = zoo.create("rf_attention", value_bias=False, heads=16)
    torch.nn.init.normal_(m.readout)
    x = sphere(16, 9, 8)
    torch.testing.assert_close(m(-x), -m(x))
    mb = zoo.create("rf_attention", heads=16)
    torch.nn.init.normal_(mb.readout)
    assert (mb(-x) + mb(x)).abs().max() > 1e-3


def test_rf_attention_features_match_the_formula() -> None:
    """f(x) = (1/√M) Σ_m (1/N) Σ_i σ(⟨x₀, W_m x_i⟩)(⟨v_m, x_i⟩ + c_m), term by term."""
    m = zoo.create("rf_attention", dim=3, heads=4, w_mean=0.5)
    torch.nn.init.normal_(m.readout)
    x = sphere(5, 4, 3)
    v = m.readout[:, 0].reshape(4, 4)
    for b in range(5):
        total = 0.0
        for mm in range(4):
            for i in range(1, 4):
                s = torch.relu(x[b, 0] @ m.W[mm] @ x[b, i])
                total += s * (v[mm, :3] @ x[b, i] + v[mm, 3]) / 3
        assert float(m(x)[b].detach()) == pytest.approx(float(total) / 2, rel=1e-5)
    torch.testing.assert_close(m.W.mean(0), 0.5 * 3**0.5 * torch.eye(3), atol=1.5, rtol=0)


def test_same_parameter_count_option() -> None:
    rfa = zoo.create("rf_attention", heads=32)
    mlp = zoo.create("rf_mlp", match_heads=32)
    assert mlp.num_features == rfa.num_features == 32 * 9
    count = sum(p.numel() for p in rfa.parameters())
    assert count == sum(p.numel() for p in mlp.parameters())


# ----------------------------------------------------------------------------- ridge
@pytest.mark.parametrize(("n", "p"), [(200, 30), (30, 200)])  # primal and dual branches
def test_ridge_solve_is_the_exact_minimiser(n: int, p: int) -> None:
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(n, p, generator=g, dtype=torch.float64)
    y = torch.randn(n, 2, generator=g, dtype=torch.float64)
    v = ridge_solve(phi, y, 0.1)
    ref = torch.linalg.solve(
        phi.T @ phi / n + 0.1 * torch.eye(p, dtype=torch.float64), phi.T @ y / n
    )
    torch.testing.assert_close(v, ref)
    obj = ridge_objective(phi, y, v, 0.1)
    for _ in range(3):  # any perturbation increases the strictly convex objective
        assert (
            ridge_objective(phi, y, v + 1e-3 * torch.randn(v.shape, generator=g).double(), 0.1)
            > obj
        )


@pytest.mark.parametrize(("n", "p"), [(200, 30), (30, 200)])  # primal and dual branches
def test_ridge_path_equals_one_solve_per_penalty(n: int, p: int) -> None:
    g = torch.Generator().manual_seed(1)
    phi = torch.randn(n, p, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    lams = [1e-6, 1e-2, 10.0]
    for lam, v in zip(lams, ridge_path(phi, y, lams)):
        torch.testing.assert_close(v, ridge_solve(phi, y, lam))
    with pytest.raises(ValueError, match="> 0"):
        ridge_path(phi, y, [0.0])


def test_ridge_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="lam"):
        ridge_solve(torch.ones(3, 2), torch.ones(3), -1.0)
    with pytest.raises(ValueError, match="share n"):
        ridge_solve(torch.ones(3, 2), torch.ones(4), 1.0)


def test_sgd_training_agrees_with_ridge_closed_form() -> None:
    """Issue 6: SGD through Lightning and the closed form agree to 1e-3 on the objective."""
    data = {"dim": 4, "n_set": 5, "n_train": 512, "n_val": 64, "n_test": 64, "batch_size": 512}
    hp = {"dim": 4, "heads": 16, "w_mean": 1.0, "l2": 1e-3}
    torch.manual_seed(0)
    dm = zoo.create_datamodule("rf_attention", **data)
    x, y = dm.split("train")
    exact = zoo.create("rf_attention", **hp)
    best = exact.fit_ridge(x, y)

    # full-batch heavy-ball GD with lr = 1/L, L the top Hessian eigenvalue / 2 of the objective
    phi = exact.batched_features(x).double()
    lmax = float(torch.linalg.eigvalsh(phi.T @ phi / len(x))[-1]) + hp["l2"]
    sgd = zoo.create("rf_attention", **hp, optimizer="sgd", lr=0.5 / lmax, momentum=0.9)
    quiet_trainer(max_epochs=600, num_sanity_val_steps=0, limit_val_batches=0).fit(
        sgd, datamodule=dm
    )
    got = sgd.objective(x, y)
    assert abs(got - best) / best < 1e-3
    assert got >= best * (1 - 1e-9)  # the closed form is the minimum

    # the recipe's ridge solver (one epoch) lands exactly on the closed form
    ridge = zoo.create("rf_attention", **hp, solver="ridge")
    quiet_trainer(max_epochs=1, num_sanity_val_steps=0, limit_val_batches=0).fit(
        ridge, datamodule=dm
    )
    torch.testing.assert_close(ridge.readout, exact.readout)


def test_normalised_error_baselines() -> None:
    """Predicting 0 scores error 1, predicting the mean scores risk 1, also per point."""
    y = torch.randn(100, 3) + 2.0
    stats = error_statistics(3)
    est = bootstrap(error_columns(torch.zeros_like(y), y, 3), stats, resamples=0)
    assert est["error"].value == pytest.approx(1.0)
    est = bootstrap(error_columns(y.mean(0).expand_as(y), y, 3), stats, resamples=0)
    assert est["risk"].value == pytest.approx(1.0, rel=1e-6)
    # four points (rows) per sample, flattened as in self_attention: the mean of all rows
    y4 = torch.randn(25, 4 * 3) + 2.0
    mean_row = y4.reshape(-1, 3).mean(0).repeat(4).expand_as(y4)
    est = bootstrap(error_columns(mean_row, y4, 3), stats, resamples=0)
    assert est["risk"].value == pytest.approx(1.0, rel=1e-6)
    assert est["loss"].n == 25  # the examples are the samples, not the points


# ----------------------------------------------------------------------------- evaluation
def evaluated(model: str) -> tuple[torch.nn.Module, dict]:
    """A small model with non-trivial outputs and the data overrides it is evaluated on."""
    torch.manual_seed(0)
    if model == "rf_attention":
        data = {"n_set": 5, "n_train": 1000}
        m = zoo.create("rf_attention", dim=4, heads=8, w_mean=1.0, l2=1e-4)
        m.fit_ridge(*zoo.create_datamodule(m, **data).split("train"))
        return m, data
    if model == "rf_mlp":
        m = zoo.create("rf_mlp", dim=4, n_set=5, width=64)
        torch.nn.init.normal_(m.readout, std=0.3)
        return m, {}
    if model == "lowrank_self":
        m = zoo.create("lowrank_attention", dim=8, heads=2, self_attention=True)
        return m, {"n_set": 5, "target": "self_farthest"}
    return zoo.create("lowrank_attention", dim=8, heads=2), {"n_set": 5}


def direct_metrics(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """loss, error, risk over rows and the per-sample log₁₀/median summary, by hand."""
    k = m.out_dim
    with torch.no_grad():
        f = m(x).double().reshape(-1, k)
    t = y.double().reshape(-1, k)
    rows = (f - t).pow(2).sum(1)
    loss = float(rows.mean())
    per_sample = rows.reshape(len(x), -1).mean(1)
    return {
        "loss": loss,
        "error": loss / float(t.pow(2).sum(1).mean()),
        "risk": loss / float((t - t.mean(0)).pow(2).sum(1).mean()),
        "loss_log10_mean": float(per_sample.log10().mean()),
        "loss_log10_std": float(per_sample.log10().std(unbiased=False)),
        "loss_median": float(per_sample.median()),
    }


@pytest.mark.parametrize("model", ["rf_attention", "rf_mlp", "lowrank", "lowrank_self"])
def test_test_stage_reports_bootstrap_estimates(model: str) -> None:
    """Every metric gets value, [lo, hi] ∋ value and n; the value is the direct full-split
    computation; the interval shrinks with n."""
    m, data = evaluated(model)
    half_widths = []
    for n in (256, 4096):
        dm = zoo.create_datamodule(m, **data, n_test=n, batch_size=100, seed=3)
        got = quiet_trainer().test(m, datamodule=dm, verbose=False)[0]
        want = direct_metrics(m, *dm.split("test"))
        for key, value in want.items():
            lo, hi = got[f"test/{key}_ci_lo"], got[f"test/{key}_ci_hi"]
            assert got[f"test/{key}"] == pytest.approx(value, rel=1e-5, abs=1e-7), key
            assert lo <= got[f"test/{key}"] <= hi and lo < hi, key
            assert got[f"test/{key}_n"] == n
        half_widths.append({k: got[f"test/{k}_ci_hi"] - got[f"test/{k}_ci_lo"] for k in want})
        assert len(m.zoo_eval["test"][0][0]["sse"]) == n  # columns kept for pooling
    for key in want:  # ~1/√n: 16× the samples, ~4× narrower
        assert half_widths[1][key] < half_widths[0][key] / 2, key


def test_validation_logs_values_without_intervals() -> None:
    m, data = evaluated("lowrank")
    dm = zoo.create_datamodule(m, **data, n_val=300, batch_size=128)
    got = quiet_trainer().validate(m, datamodule=dm, verbose=False)[0]
    assert {"val/loss", "val/error", "val/risk"} <= set(got)  # val/loss is the monitor
    assert not any(k.endswith(("_ci_lo", "_ci_hi", "_n")) for k in got)
    x, y = dm.split("val")
    assert got["val/error"] == pytest.approx(direct_metrics(m, x, y)["error"], rel=1e-5)


@pytest.mark.parametrize("model", ["rf_attention", "lowrank"])
def test_model_card_shows_intervals(model: str) -> None:
    m, data = evaluated(model)
    dm = zoo.create_datamodule(m, **data, n_test=512)
    metrics = fold(quiet_trainer().test(m, datamodule=dm, verbose=False)[0])
    key = "test/risk" if model == "rf_attention" else "test/error"
    lo, hi = metrics[f"{key}_ci"]
    text = m.model_card_extra(metrics)
    assert f"`{key}` = {metrics[key]:.4g} [{lo:.4g}, {hi:.4g}], n = 512" in text
    assert "Measured" not in m.model_card_extra({})


# ----------------------------------------------------------------------------- low rank
def test_identity_construction_computes_the_nearest_key() -> None:
    """Q = K = V = O = I, one full-rank head, τ → ∞: exactly argmax_i ⟨x₀, x_i⟩."""
    x = sphere(256, 17, 64)
    target = T.nearest_neighbour(x)
    errors = []
    for tau in (10.0, 100.0, 1e5):
        m = LowRankAttention(dim=64, heads=1, temperature=tau)
        m.set_identity()
        with torch.no_grad():
            errors.append(float(m.loss(m(x), target)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-8
    assert errors[0] > 0.1  # a soft temperature does not solve it
    far = LowRankAttention(dim=64, heads=1, temperature=1e5)
    far.set_identity()
    with torch.no_grad():
        far.q.neg_()  # Q = −I: the farthest key
        torch.testing.assert_close(far(x), T.farthest_neighbour(x))


def test_self_attention_identity_construction_computes_every_farthest_point() -> None:
    """Self-attention variant: Q = −I, K = V = O = I, τ → ∞ gives each point's farthest."""
    x = sphere(128, 16, 64).double()  # float64 and τ = 1e9 resolve near-ties among 2048 rows
    target = T.self_farthest(x)
    assert target.shape == (128, 16 * 64)
    m = LowRankAttention(dim=64, heads=1, temperature=1e9, self_attention=True).double()
    m.set_identity()
    with torch.no_grad():
        torch.testing.assert_close(m(x), target)
        # Permuting the points permutes the outputs (the target is equivariant).
        perm = torch.randperm(16)
        out = m(x[:, perm]).reshape(128, 16, 64)
        torch.testing.assert_close(out, m(x).reshape(128, 16, 64)[:, perm])
    low = LowRankAttention(dim=64, heads=8, temperature=1e9, self_attention=True).double()
    low.set_identity()
    with torch.no_grad():  # blocks of rank 8 see 8 coordinates each: far from exact
        assert float(((low(x) - target) ** 2).sum() / (target**2).sum()) > 0.3


def test_identity_blocks_with_many_low_rank_heads_fail() -> None:
    """H heads of rank d/H with the block construction only see d/H coordinates each."""
    x = sphere(256, 17, 64)
    m = LowRankAttention(dim=64, heads=8, temperature=1e5)
    m.set_identity()
    with torch.no_grad():
        assert float(m.loss(m(x), T.nearest_neighbour(x))) > 0.3


def test_rank_and_shape_validation() -> None:
    with pytest.raises(ValueError, match="does not divide"):
        zoo.create("lowrank_attention", heads=3)
    assert zoo.create("lowrank_attention", heads=3, rank=8).q.shape == (1, 3, 64, 8)
    assert zoo.create("lowrank_attention", heads=4).rank == 16
    with pytest.raises(ValueError, match="temperature"):
        zoo.create("lowrank_attention", temperature=0.0)
    with pytest.raises(ValueError, match=r"\(B, N\+1, 64\)"):
        zoo.create("lowrank_attention")(torch.ones(2, 5, 8))
    with pytest.raises(ValueError, match="built for"):
        zoo.create("rf_mlp")(torch.ones(2, 5, 8))


def test_frozen_features_are_saved_and_not_trained(tmp_path) -> None:
    m = zoo.create("rf_attention", heads=8)
    assert "W" in m.state_dict() and not any(p is m.W for p in m.parameters())
    torch.nn.init.normal_(m.readout)
    zoo.save_checkpoint(m, tmp_path / "ck", metrics={"test/risk": 0.5})
    # a different feature seed would change W: the loaded one must come from the file
    loaded = zoo.load(tmp_path / "ck")
    x = sphere(8, 9, 8)
    torch.testing.assert_close(loaded(x), m(x))
    assert "test/risk" in (tmp_path / "ck" / "README.md").read_text()
