"""The allocator's rules, one table row each (CONTRACT §2, §6)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from ds01.config import Limits
from ds01.errors import NoCapacity, QuotaExceeded, UsageError
from ds01.gpu.allocator import allocate_slots
from ds01.gpu.model import Gpu, Holding, Inventory, Slot
from ds01.gpu.simulated import profile_slices

ALICE = 1001


def full(i: int) -> Gpu:
    return Gpu(index=i, uuid=f"GPU-{i}", name="A100", memory_mib=81920)


def mig(i: int, *profiles: str) -> Gpu:
    slots = tuple(
        Slot(
            f"{i}.{j}",
            f"MIG-{i}-{j}",
            "mig",
            i,
            "A100",
            p,
            profile_slices(p)[0] / 7,
            profile_slices(p)[1] * 1024,
        )
        for j, p in enumerate(profiles)
    )
    return Gpu(index=i, uuid=f"GPU-{i}", name="A100", memory_mib=81920, mig_enabled=True, migs=slots)


# two whole GPUs, GPU 2 split 3+2+1+1, GPU 3 split 3+3 (the shipped simulated lab box)
LAB = Inventory(
    "simulated",
    (full(0), full(1), mig(2, "3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"), mig(3, "3g.40gb", "3g.40gb")),
)
WHOLE_ONLY = Inventory("simulated", (full(0), full(1)))
NO_GPUS = Inventory("none", notice="no NVIDIA driver found")


def hold(
    slot: str, user: str = "bob", uid: int = 2002, *, reclaimable: bool = False, status: str = "running"
) -> Holding:
    g = LAB.slot(slot) or WHOLE_ONLY.slot(slot)
    return Holding(
        slot,
        g.uuid if g else "",
        g.gpueq if g else 1.0,
        user,
        uid,
        f"{user}-job",
        status,
        "2026-11-23T10:00:00Z",
        reclaimable,
    )


def mine(slot: str, **kw: object) -> Holding:
    return hold(slot, "alice", ALICE, **kw)  # type: ignore[arg-type]


@dataclass
class Case:
    id: str
    want: list[str] | type[Exception]
    gpus: int = 1
    profile: str | None = None
    holdings: list[Holding] = field(default_factory=list)
    limits: dict[str, object] = field(default_factory=dict)
    inventory: Inventory = LAB
    says: tuple[str, ...] = ()


FULL = {"allow_full_gpu": True, "max_gpu_equivalents": 2.0, "max_gpu_slots_per_container": 2}
MIG_ONLY = {"allow_full_gpu": False, "max_gpu_equivalents": 1.0, "max_gpu_slots_per_container": 2}

CASES = [
    # --gpus N: whole GPUs when allowed and free, by index
    Case("full gpu by index", ["0"], limits=FULL),
    Case("two full gpus", ["0", "1"], gpus=2, limits=FULL),
    Case("next full gpu when one is held", ["1"], limits=FULL, holdings=[hold("0")]),
    Case("mig when no full gpu is free", ["3.1"], limits=FULL, holdings=[hold("0"), hold("1"), hold("3.0")]),
    # allow_full_gpu: false = MIG slices only
    Case("mig only: untouched gpus by index", ["2.0"], limits=MIG_ONLY),
    Case(
        "mig only on a whole-gpu box",
        NoCapacity,
        limits=MIG_ONLY,
        inventory=WHOLE_ONLY,
        says=("MIG slices only",),
    ),
    # placement packs onto partly used GPUs and keeps untouched ones whole
    Case("pack onto the partly used gpu", ["3.1"], limits=MIG_ONLY, holdings=[hold("3.0")]),
    Case("best fit: the fuller gpu first", ["3.1"], limits=MIG_ONLY, holdings=[hold("2.0"), hold("3.0")]),
    Case("profile packs too", ["2.3"], profile="1g.10gb", limits=MIG_ONLY, holdings=[hold("2.2")]),
    Case("profile on untouched gpu", ["2.2"], profile="1g.10gb", limits=MIG_ONLY),
    Case("two slices of a profile", ["2.0", "3.0"], gpus=2, profile="3g.40gb", limits={**FULL}),
    Case("unknown profile", UsageError, profile="7g.80gb", limits=MIG_ONLY, says=("1g.10gb", "3g.40gb")),
    # max_gpu_slots_per_container
    Case(
        "slots per container",
        QuotaExceeded,
        gpus=2,
        limits={"max_gpu_slots_per_container": 1},
        says=("at most 1 GPU slot", "asked for 2"),
    ),
    Case(
        "slots per container unlimited",
        ["0", "1"],
        gpus=2,
        limits={"max_gpu_slots_per_container": None, "max_gpu_equivalents": None},
    ),
    # max_gpu_equivalents, MIG slices by weight (the reference counted them as 0)
    Case(
        "quota full: own holdings named",
        QuotaExceeded,
        limits={"max_gpu_equivalents": 1.0},
        holdings=[mine("0")],
        says=("holds 1 of 1 gpueq", "alice-job holds 0"),
    ),
    Case(
        "mig slices weigh their slices",
        QuotaExceeded,
        profile="3g.40gb",
        limits=MIG_ONLY,
        holdings=[mine("2.0"), mine("3.0")],
        says=("holds 0.857 of 1",),
    ),
    Case(
        "a 1g slice still fits 6/7 + 1/7 = 1",
        ["2.2"],
        profile="1g.10gb",
        limits=MIG_ONLY,
        holdings=[mine("2.0"), mine("3.0")],
    ),
    Case(
        "fractional quota 1.5: full gpu would exceed, a slice fits",
        ["2.1"],
        limits={"max_gpu_equivalents": 1.5, "allow_full_gpu": True},
        holdings=[mine("0"), hold("2.0")],
    ),
    Case(
        "fractional quota 1.5: nothing fits 0.07",
        QuotaExceeded,
        limits={"max_gpu_equivalents": 1.5, "allow_full_gpu": True},
        holdings=[mine("0"), mine("2.0")],
        says=("holds 1.43 of 1.5",),
    ),
    Case(
        "quota: skip a slice that leaves no room for the rest",
        ["2.1", "2.2"],
        gpus=2,
        limits={"max_gpu_equivalents": 0.5, "allow_full_gpu": False, "max_gpu_slots_per_container": 2},
    ),
    Case(
        "others' holdings do not count against me; last free slice of a gpu",
        ["2.3"],
        limits=MIG_ONLY,
        holdings=[hold("2.0"), hold("2.1"), hold("2.2")],
    ),
    # reclaim: a hold past its time counts as free and not against the quota
    Case(
        "reclaimable slot is free",
        ["0"],
        limits=FULL,
        holdings=[hold("0", reclaimable=True, status="exited")],
    ),
    Case(
        "own reclaimable hold does not count",
        ["0"],
        limits={"max_gpu_equivalents": 1.0},
        holdings=[mine("0", reclaimable=True, status="exited")],
    ),
    # refusals name the holders
    Case(
        "no capacity names holders",
        NoCapacity,
        inventory=WHOLE_ONLY,
        limits=FULL,
        holdings=[hold("0"), hold("1", "carol", 2003, status="exited")],
        says=("0 bob/bob-job (running since 2026-11-23T10:00:00Z)", "1 carol/carol-job (exited since"),
    ),
    Case(
        "profile all held",
        NoCapacity,
        profile="1g.10gb",
        limits=MIG_ONLY,
        holdings=[hold("2.2"), hold("2.3", "carol", 2003)],
        says=("no capacity for 1 1g.10gb slot", "carol"),
    ),
    Case("no gpus on the host", NoCapacity, inventory=NO_GPUS, says=("no NVIDIA driver found",)),
    # relabelled slots: a label naming the whole GPU blocks its slices, a UUID match blocks a renamed slot
    Case("whole-gpu label blocks its slices", ["3.0"], limits=MIG_ONLY, holdings=[hold("2")]),
    Case("uuid match blocks a renamed slot", ["1"], limits=FULL, holdings=[replace(hold("0"), slot_id="9")]),
    Case("cpu only", [], gpus=0),
    Case("negative", UsageError, gpus=-1),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_allocator_rules(case: Case) -> None:
    limits = replace(Limits(), **case.limits)  # type: ignore[arg-type]

    def run() -> list[str]:
        alloc = allocate_slots(
            case.inventory,
            case.holdings,
            limits,
            uid=ALICE,
            user="alice",
            gpus=case.gpus,
            mig_profile=case.profile,
        )
        return alloc.slot_ids

    if isinstance(case.want, list):
        assert run() == case.want
        return
    with pytest.raises(case.want) as info:
        run()
    assert info.value.exit_code == (2 if case.want is UsageError else 4)
    for text in case.says:
        assert text in str(info.value)


def test_never_hands_out_a_slot_twice_until_the_box_is_full() -> None:
    """Allocate slice after slice for many users; every slot goes once, then NoCapacity."""
    holdings: list[Holding] = []
    limits = replace(Limits(), allow_full_gpu=True, max_gpu_equivalents=None)
    for n in range(len(LAB.slots())):
        alloc = allocate_slots(LAB, holdings, limits, uid=3000 + n, user=f"u{n}", gpus=1, mig_profile=None)
        (slot,) = alloc.slots
        holdings.append(Holding(slot.id, slot.uuid, slot.gpueq, f"u{n}", 3000 + n, "job", "running", ""))
    assert sorted(h.slot_id for h in holdings) == sorted(s.id for s in LAB.slots())
    with pytest.raises(NoCapacity):
        allocate_slots(LAB, holdings, limits, uid=1, user="late", gpus=1, mig_profile=None)


def test_allocation_gpueq_is_the_sum_of_weights() -> None:
    limits = replace(
        Limits(), allow_full_gpu=False, max_gpu_equivalents=None, max_gpu_slots_per_container=None
    )
    alloc = allocate_slots(LAB, [], limits, uid=ALICE, user="alice", gpus=2, mig_profile="3g.40gb")
    assert alloc.gpueq == pytest.approx(6 / 7, abs=1e-4)
