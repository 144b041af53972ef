"""Which queued images share a UNet call."""

from __future__ import annotations

from maskattn_trt.serve.batching import Item, images_per_call, plan
from maskattn_trt.serve.schema import GenerateParams


def _item(prompt, seed, **settings):
    return Item(GenerateParams(prompt, **settings), seed)


def test_compatible_items_share_a_run_and_others_wait_in_arrival_order():
    a1, b1, a2, c1, a3 = (_item("a", 1), _item("b", 2, steps=10), _item("c", 3, negative_prompt="blurry"),
                          _item("d", 4, width=512), _item("e", 9))
    runs = plan([a1, b1, a2, c1, a3], lambda key: 8)
    assert runs == [[a1, a2, a3], [b1], [c1]]  # prompt, negative and seed do not split a run


def test_runs_are_cut_to_the_runner_capacity():
    items = [_item(str(i), i) for i in range(7)]
    assert [len(r) for r in plan(items, lambda key: 3)] == [3, 3, 1]


def test_capacity_halves_with_guidance():
    guided, unguided = _item("a", 1).key, _item("a", 1, guidance=1.0).key
    assert images_per_call(guided, max_batch=8, profile_batch=8) == 4
    assert images_per_call(unguided, max_batch=8, profile_batch=8) == 8
    assert images_per_call(guided, max_batch=2, profile_batch=8) == 2
    assert images_per_call(guided, max_batch=4, profile_batch=1) == 1
