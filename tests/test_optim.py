"""optax chains from the config: decay modes, schedules, plateau scale, max-norm."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import tiny_config
from textclf_jax.training import optim


def _update(config, params, grads, steps=1):
  tx = optim.make_optimizer(config, total_steps=100)
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params, state


@pytest.mark.parametrize("optimizer", optim.OPTIMIZERS)
@pytest.mark.parametrize("schedule", optim.SCHEDULES)
def test_every_optimizer_and_schedule_descends(optimizer, schedule):
  config = tiny_config(optimizer=optimizer, schedule=schedule, learning_rate=0.1, warmup_steps=2,
                       clip_norm=1.0, weight_decay=1e-4)
  params = {"w": jnp.array([1.0, -2.0])}
  new, _ = _update(config, params, {"w": jnp.array([0.5, -0.5])}, steps=3)
  assert float(new["w"][0]) < 1.0 and float(new["w"][1]) > -2.0


@pytest.mark.parametrize("mode", ["decoupled", "l2"])
def test_weight_decay_with_zero_gradient_shrinks_by_lr_times_decay(mode):
  config = tiny_config(optimizer="sgd", momentum=0.0, learning_rate=0.1, weight_decay=0.5,
                       weight_decay_mode=mode)
  new, _ = _update(config, {"w": jnp.array([2.0])}, {"w": jnp.array([0.0])})
  np.testing.assert_allclose(new["w"], [2.0 - 0.1 * 0.5 * 2.0], rtol=1e-6)


def test_adamw_is_optax_adamw():
  config = tiny_config(optimizer="adamw", learning_rate=0.01, weight_decay=0.1)
  params, grads = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([0.3, -0.1])}
  ours, _ = _update(config, params, grads, steps=3)
  ref = optax.adamw(0.01, weight_decay=0.1)
  state = ref.init(params)
  p = params
  for _ in range(3):
    u, state = ref.update(grads, state, p)
    p = optax.apply_updates(p, u)
  np.testing.assert_allclose(ours["w"], p["w"], rtol=1e-6)


def test_schedules_values():
  warm = optim.make_schedule(tiny_config(schedule="warmup_cosine", learning_rate=1.0,
                                         warmup_steps=10), total_steps=110)
  assert float(warm(0)) == 0.0 and float(warm(10)) == pytest.approx(1.0)
  assert float(warm(110)) == pytest.approx(0.0, abs=1e-6)
  linear = optim.make_schedule(tiny_config(schedule="linear", learning_rate=1.0), 100)
  assert float(linear(50)) == pytest.approx(0.5)
  exp = optim.make_schedule(tiny_config(schedule="exponential", learning_rate=1.0,
                                        decay_steps=10, decay_rate=0.5), 100)
  assert float(exp(20)) == pytest.approx(0.25)


def test_plateau_scale_multiplies_updates():
  config = tiny_config(optimizer="sgd", momentum=0.0, learning_rate=1.0, schedule="plateau")
  tx = optim.make_optimizer(config, 10)
  params = {"w": jnp.array([0.0])}
  state = optim.set_plateau_scale(tx.init(params), 0.25)
  assert optim.get_plateau_scale(state) == 0.25
  updates, _ = tx.update({"w": jnp.array([1.0])}, state, params)
  np.testing.assert_allclose(updates["w"], [-0.25])


def test_unknown_optimizer_is_named():
  with pytest.raises(ValueError, match="rmsprop"):
    optim.make_optimizer(tiny_config(optimizer="rmsprop"), 10)
